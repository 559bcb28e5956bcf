//! `qwglm serve` for the CLI's tests: a child process on a free loopback port, killed on drop.

use std::path::Path;
use std::process::{Child, Command};

pub struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serves `site` and the model folders under `models`; returns once it accepts connections.
pub fn serve(site: &Path, models: &Path) -> (Server, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(env!("CARGO_BIN_EXE_qwglm"))
        .args(["serve", "--site", site.to_str().unwrap(), "--models", models.to_str().unwrap()])
        .args(["--port", &port.to_string()])
        .spawn()
        .unwrap();
    let server = Server(child);
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (server, port);
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("qwglm serve did not start");
}
