//! Runs the server by hand: `cargo run -p scry-server --example serve -- [ADDR] [DATA_DIR]`
//! (default 127.0.0.1:8750 and ./scry-data). Stops on Ctrl-C or SIGTERM. With
//! `SCRY_INIT_ADMIN=1` it only creates an admin token and prints it.

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:8750".into())
        .parse()?;
    let data_dir = args.next().unwrap_or_else(|| "scry-data".into()).into();
    let dir: std::path::PathBuf = data_dir;
    if std::env::var_os("SCRY_INIT_ADMIN").is_some() {
        println!("{}", scry_server::init_admin(&dir)?);
        return Ok(());
    }
    scry_server::run_blocking(scry_server::ServerConfig::new(listen, dir))
}
