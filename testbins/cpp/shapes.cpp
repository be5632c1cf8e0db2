/*
 * shapes.cpp - the C++ testbin: namespaces, a class hierarchy with virtual
 * methods, references, a class template and the std containers, each held as
 * arguments and locals of noinline functions with marked probe lines.
 *
 * Used by the integration tests for: reading C++ values at source lines
 * (classes with base classes, references, templates, std::string with and
 * without the small-string buffer, std::vector / std::map / std::unordered_map,
 * std::unique_ptr / std::shared_ptr), and as the program gdb and scry are
 * compared on (tests/support/gdb.rs is the gdb side).
 *
 * Every iteration seq = 0, 1, 2, ... (s = (int)seq) makes these calls, in this
 * order, each a noinline, noclone function with one marked line; the values at
 * the marked line, and the record it appends, are:
 *
 * shop::price_order(const shop::Order &o, int &counter)     [probe price_order_body]
 *   o.id = s   o.qty = s % 5 + 1   o.price = 2.5 + s   o.customer = customers[s % 3]
 *   counter = shop::order_count = s (set to s + 1 after the marked line)
 *   local total = o.qty * o.price
 *   "order seq=<s> id=<id> qty=<qty> price=<price> customer=<customer>
 *    counter=<counter> total=<total>"
 *   customers = { "alice", "bob", "maximilian-alexander-the-third" }
 *   (the SSO case, and one longer than 15 chars: a heap buffer)
 *
 * geo::describe(const geo::Shape &s, int seq)                [probe describe_body]
 *   s = *shapes[s % 3], each held as std::unique_ptr<geo::Shape> by main:
 *     0: geo::Rect     id=1 name="rect"     origin={0,0}  w=3 h=4          area 12
 *     1: geo::Square   id=2 name="square"   origin={1,2}  w=h=2.5 tilt=45  area 6.25
 *     2: geo::Triangle id=3 name="triangle" origin={-1,5} base=5 height=5  area 12.5
 *   (Square derives from Rect, which like Triangle derives from the abstract
 *   Shape {vptr, id, name, origin}; area() and kind() are virtual)
 *   locals a = s.area(), k = s.kind()
 *   "shape seq=<s> id=<id> kind=<rect|square|triangle> name=<name>
 *    area=<area> origin=<x>,<y>"
 *
 * store::open_int_box(const store::Box<int> &b, int seq)
 *                                                      [probe open_int_box_body]
 * store::open_text_box(const store::Box<std::string> &b, int seq)
 *                                                      [probe open_text_box_body]
 *   the two instances of the class template store::Box<T> { T value; int tag; }:
 *     Box<int>         { value = s * 10,          tag = s % 4 }
 *     Box<std::string> { value = "item-<s>",      tag = s % 4 + 100 }
 *   local weight = b.tag * 2 + seq (b.weigh(seq)); open_text_box also has
 *   local len = b.value.size()
 *   "box seq=<s> type=<int|string> value=<value> tag=<tag> weight=<weight>"
 *
 * report::inspect(int seq, const std::vector<int> &nums,
 *                 const std::vector<std::string> &words,
 *                 const std::map<std::string, int> &ages,
 *                 const std::unordered_map<int, std::string> &codes,
 *                 const std::unique_ptr<geo::Square> &owned,
 *                 std::shared_ptr<geo::Shape> shared)       [probe inspect_body]
 *   nums   = s % 3 + 2 elements, nums[i] = 10 * i + s
 *   words  = { "alpha", "beta", "gamma-delta-epsilon-zeta" }
 *   ages   = { "alice": 30 + s, "bob": 25, "carol": 41 }
 *   codes  = { 1: "one", 2: "two", 3: "three" } plus 4: "four" when s is odd
 *            (size 3 + s % 2)
 *   owned  = geo::Square id=10+s name="owned" origin={s,-s} w=h=1.5 tilt=s%90
 *   shared = geo::Triangle id=7 name="shared-triangle" origin={7,7} base=2
 *            height=3 (area 3), made once by main; passed by value, so
 *            use_count() == 2 at the marked line
 *   locals greeting = "hello" (SSO), banner = "containers-of-iteration-<s>"
 *          (> 15 chars), total = nums.size() + words.size() + ages.size()
 *          + codes.size()
 *   "containers seq=<s> greeting=hello banner=<banner> nums=<n,n,..>
 *    nums_size=<n> words=<w,w,w> ages=<k:v,k:v,k:v> codes_size=<n>
 *    owned=<id>:<kind> shared=<id>:<use_count> total=<total>"
 *
 * Floating-point values are written with the default ostream format (12,
 * 6.25, 12.5, 3.5). Nothing recorded depends on addresses or time, so the
 * n-th hit of a site sees the same values in every run.
 *
 * Options:
 *   --iterations N     iterations, 0 = forever (default 0)
 *   --interval-us U    sleep between iterations in microseconds (default 1000)
 *   --record FILE      append the records above, one line per marked line
 *   --wait-stdin       after "ready pid=<pid>", block until one byte (or EOF)
 *                      arrives on stdin before the first iteration
 */
#include "testbin.h"

#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

/* Appends line plus '\n' to the --record file with one write() (no length
 * limit, unlike append_line). */
__attribute__((noinline))
static void record_line(const std::string &line)
{
	if (record_fd < 0)
		return;
	std::string l = line + "\n";
	if (write(record_fd, l.data(), l.size()) != (ssize_t)l.size())
		_exit(3);
}

namespace geo {

struct Point {
	int x;
	int y;
};

class Shape {
public:
	Shape(int id_, const char *name_, Point origin_) : id(id_), name(name_), origin(origin_) {}
	virtual ~Shape() = default;
	virtual double area() const = 0;
	virtual const char *kind() const { return "shape"; }

	int id;
	std::string name;
	Point origin;
};

class Rect : public Shape {
public:
	Rect(int id_, const char *name_, Point o, double w_, double h_)
		: Shape(id_, name_, o), w(w_), h(h_) {}
	double area() const override { return w * h; }
	const char *kind() const override { return "rect"; }

	double w;
	double h;
};

class Square : public Rect {
public:
	Square(int id_, const char *name_, Point o, double side, int tilt_)
		: Rect(id_, name_, o, side, side), tilt(tilt_) {}
	const char *kind() const override { return "square"; }

	int tilt;
};

class Triangle : public Shape {
public:
	Triangle(int id_, const char *name_, Point o, double base_, double height_)
		: Shape(id_, name_, o), base(base_), height(height_) {}
	double area() const override { return base * height / 2; }
	const char *kind() const override { return "triangle"; }

	double base;
	double height;
};

/* describe() runs so far; bumped on the probe line. */
volatile int describe_hits;

__attribute__((noinline))
static void record_shape(int seq, const Shape &s, double a, const char *k)
{
	std::ostringstream r;
	r << "shape seq=" << seq << " id=" << s.id << " kind=" << k << " name=" << s.name
	  << " area=" << a << " origin=" << s.origin.x << "," << s.origin.y;
	record_line(r.str());
}

__attribute__((noinline, noclone))
double describe(const Shape &s, int seq)
{
	double a = s.area();
	const char *k = s.kind();

	describe_hits++; record_shape(seq, s, a, k); // @probe describe_body
	return a + s.id;
}

} // namespace geo

namespace shop {

struct Order {
	int id;
	int qty;
	double price;
	std::string customer;
};

/* Orders priced so far: price_order()'s counter. */
int order_count;
/* price_order() runs so far; bumped on the probe line. */
volatile int price_order_hits;

__attribute__((noinline))
static void record_order(const Order &o, int seq, int counter, double total)
{
	std::ostringstream r;
	r << "order seq=" << seq << " id=" << o.id << " qty=" << o.qty << " price=" << o.price
	  << " customer=" << o.customer << " counter=" << counter << " total=" << total;
	record_line(r.str());
}

__attribute__((noinline, noclone))
int price_order(const Order &o, int &counter)
{
	int seq = counter;
	double total = o.qty * o.price;

	price_order_hits++; record_order(o, seq, counter, total); // @probe price_order_body
	counter = seq + 1;
	return (int)total;
}

} // namespace shop

namespace store {

template <typename T>
struct Box {
	T value;
	int tag;

	int weigh(int seq) const { return tag * 2 + seq; }
};

/* open_int_box() and open_text_box() runs so far; bumped on their probe lines. */
volatile int open_box_hits;

__attribute__((noinline))
static void record_box(int seq, const Box<int> &b, int weight)
{
	std::ostringstream r;
	r << "box seq=" << seq << " type=int value=" << b.value << " tag=" << b.tag
	  << " weight=" << weight;
	record_line(r.str());
}

__attribute__((noinline))
static void record_box(int seq, const Box<std::string> &b, int weight)
{
	std::ostringstream r;
	r << "box seq=" << seq << " type=string value=" << b.value << " tag=" << b.tag
	  << " weight=" << weight;
	record_line(r.str());
}

/* Not templates themselves: GCC 12 emits no is_stmt line rows for the body of
 * a function template instance at -O2 (so a debugger cannot put a line
 * breakpoint there); the two instances of the class template Box are enough. */
__attribute__((noinline, noclone))
int open_int_box(const Box<int> &b, int seq)
{
	int weight = b.weigh(seq);

	open_box_hits++; record_box(seq, b, weight); // @probe open_int_box_body
	return weight;
}

__attribute__((noinline, noclone))
int open_text_box(const Box<std::string> &b, int seq)
{
	int weight = b.weigh(seq);
	size_t len = b.value.size();

	open_box_hits++; record_box(seq, b, weight); // @probe open_text_box_body
	return weight + (int)len;
}

} // namespace store

namespace report {

/* inspect() runs so far; bumped on the probe line. */
volatile int inspect_hits;

__attribute__((noinline))
static void record_containers(int seq, const std::string &greeting, const std::string &banner,
			      const std::vector<int> &nums, const std::vector<std::string> &words,
			      const std::map<std::string, int> &ages,
			      const std::unordered_map<int, std::string> &codes,
			      const std::unique_ptr<geo::Square> &owned,
			      const std::shared_ptr<geo::Shape> &shared, size_t total)
{
	std::ostringstream r;
	r << "containers seq=" << seq << " greeting=" << greeting << " banner=" << banner
	  << " nums=";
	for (size_t i = 0; i < nums.size(); i++)
		r << (i ? "," : "") << nums[i];
	r << " nums_size=" << nums.size() << " words=";
	for (size_t i = 0; i < words.size(); i++)
		r << (i ? "," : "") << words[i];
	r << " ages=";
	const char *sep = "";
	for (const auto &kv : ages) {
		r << sep << kv.first << ":" << kv.second;
		sep = ",";
	}
	r << " codes_size=" << codes.size() << " owned=" << owned->id << ":" << owned->kind()
	  << " shared=" << shared->id << ":" << shared.use_count() << " total=" << total;
	record_line(r.str());
}

__attribute__((noinline, noclone))
size_t inspect(int seq, const std::vector<int> &nums, const std::vector<std::string> &words,
	       const std::map<std::string, int> &ages,
	       const std::unordered_map<int, std::string> &codes,
	       const std::unique_ptr<geo::Square> &owned, std::shared_ptr<geo::Shape> shared)
{
	std::string greeting = "hello";
	std::string banner = "containers-of-iteration-" + std::to_string(seq);
	size_t total = nums.size() + words.size() + ages.size() + codes.size();

	inspect_hits++; record_containers(seq, greeting, banner, nums, words, ages, codes, owned, shared, total); // @probe inspect_body
	return total + greeting.size() + banner.size() + (size_t)shared.use_count();
}

} // namespace report

static void usage(void)
{
	usage_exit("shapes [--iterations N] [--interval-us U] [--record FILE] [--wait-stdin]");
}

int main(int argc, char **argv)
{
	static const char *const customers[] = { "alice", "bob", "maximilian-alexander-the-third" };
	long iterations = 0, interval_us = 1000;
	volatile double sink = 0;

	for (int i = 1; i < argc; i++) {
		if (!opt_long(argc, argv, &i, "--iterations", &iterations) &&
		    !opt_long(argc, argv, &i, "--interval-us", &interval_us) &&
		    !common_option(argc, argv, &i))
			usage();
	}

	std::vector<std::unique_ptr<geo::Shape>> shapes;
	shapes.push_back(std::make_unique<geo::Rect>(1, "rect", geo::Point{ 0, 0 }, 3.0, 4.0));
	shapes.push_back(std::make_unique<geo::Square>(2, "square", geo::Point{ 1, 2 }, 2.5, 45));
	shapes.push_back(std::make_unique<geo::Triangle>(3, "triangle", geo::Point{ -1, 5 }, 5.0, 5.0));
	std::shared_ptr<geo::Shape> shared =
		std::make_shared<geo::Triangle>(7, "shared-triangle", geo::Point{ 7, 7 }, 2.0, 3.0);
	const std::vector<std::string> words = { "alpha", "beta", "gamma-delta-epsilon-zeta" };

	ready();

	for (long seq = 0; iterations == 0 || seq < iterations; seq++) {
		int s = (int)seq;

		shop::Order o{ s, s % 5 + 1, 2.5 + s, customers[s % 3] };
		sink = sink + shop::price_order(o, shop::order_count);

		sink = sink + geo::describe(*shapes[(size_t)(s % 3)], s);

		store::Box<int> bi{ s * 10, s % 4 };
		sink = sink + store::open_int_box(bi, s);
		store::Box<std::string> bs{ "item-" + std::to_string(s), s % 4 + 100 };
		sink = sink + store::open_text_box(bs, s);

		std::vector<int> nums;
		for (int i = 0; i < s % 3 + 2; i++)
			nums.push_back(10 * i + s);
		std::map<std::string, int> ages = { { "alice", 30 + s }, { "bob", 25 }, { "carol", 41 } };
		std::unordered_map<int, std::string> codes = { { 1, "one" }, { 2, "two" }, { 3, "three" } };
		if (s % 2)
			codes[4] = "four";
		auto owned = std::make_unique<geo::Square>(10 + s, "owned", geo::Point{ s, -s }, 1.5, s % 90);
		sink = sink + (double)report::inspect(s, nums, words, ages, codes, owned, shared);

		sleep_us(interval_us);
	}
	return 0;
}
