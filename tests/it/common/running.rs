//! A `refundd` child process a test started: stopped when the test ends,
//! however it ends, read for the address it says it listens on, asked to
//! stop as an operator would, and waited for.

use std::io::{BufRead, BufReader};

/// Stops the child (SIGKILL) and reaps it when dropped, so a failing test
/// leaves no process behind.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The address a starting simulator logs once it listens, read from its
/// stdout (JSON log lines: start it with `stdout(Stdio::piped())`).
pub fn listening_addr(sim: &mut Running) -> String {
    let stdout = BufReader::new(sim.0.stdout.take().expect("the simulator's stdout piped"));
    for line in stdout.lines() {
        let line = line.unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["message"] == "bank simulator listening" {
            return v["addr"].as_str().unwrap().to_string();
        }
    }
    panic!("the simulator ended without listening");
}

/// Asks the child to stop (SIGTERM), as an operator or systemd would.
pub fn terminate(child: &std::process::Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
}

/// How the child ended, waited for off the runtime's threads.
pub async fn exited(mut child: std::process::Child) -> std::process::ExitStatus {
    tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait for the child")
}
