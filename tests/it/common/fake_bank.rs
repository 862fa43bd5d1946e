//! A small fake CTBC bank on 127.0.0.1 that speaks raw HTTP over TCP and the
//! real envelope, for feeding refundd's client the answers the simulator
//! never gives: odd statuses, broken pages, closed connections, slowness.
//! Unlike `refundd sim` it has no ledger: each test says how to answer.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use refundd::ctbc::envelope::Envelope;
use refundd::ctbc::wire::{open_form, seal_form, string_object};
use refundd::ctbc::{Client, ClientConfig, MerId, OrderNo};
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The fake bank's MAC key, IV and merchant id.
pub const KEY: &str = "ABCDEFGHIJKLMNOPQRSTUVWX";
pub const IV: &str = "test8iv!";
pub const MERID: &str = "1234567";

pub fn envelope() -> Envelope {
    Envelope::new(KEY.as_bytes(), IV.as_bytes()).unwrap()
}

/// One request as the fake bank read it off the socket.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> Map<String, Value> {
        let opened = open_form(&envelope(), &self.body).unwrap();
        assert_eq!(opened.mer_id.as_deref(), Some(MERID));
        opened.json
    }
}

/// What the fake bank does with a request.
pub enum Reply {
    /// 200 with the JSON sealed in a form, as the bank answers.
    Answer(Map<String, Value>),
    /// Any status and body.
    Raw {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
    },
    /// A redirect: `status` with a `Location` header and no body.
    Redirect { status: u16, location: String },
    /// Read the request, then close the connection without a word.
    CloseAfterRead,
    /// Read the request and answer only after the client has given up.
    Slow,
}

pub struct FakeBank {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

pub type Behaviour = Arc<dyn Fn(&Received) -> Reply + Send + Sync>;

impl FakeBank {
    pub async fn start(behaviour: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> FakeBank {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let behaviour: Behaviour = Arc::new(behaviour);
        let log = received.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(stream, behaviour.clone(), log.clone()));
            }
        });
        FakeBank { addr, received }
    }

    /// Answers every request with the same JSON.
    pub async fn answering(json: Map<String, Value>) -> FakeBank {
        FakeBank::start(move |_| Reply::Answer(json.clone())).await
    }

    pub fn url(&self) -> url::Url {
        url::Url::parse(&format!("http://{}/MicroPos", self.addr)).unwrap()
    }

    pub fn client(&self) -> Client {
        Client::new(config(self.url())).unwrap()
    }

    pub fn client_with_timeout(&self, timeout: Duration) -> Client {
        let mut cfg = config(self.url());
        cfg.timeout = timeout;
        Client::new(cfg).unwrap()
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

pub fn config(base_url: url::Url) -> ClientConfig {
    let mut cfg = ClientConfig::new(base_url, MerId::parse(MERID).unwrap(), envelope());
    cfg.timeout = Duration::from_secs(5);
    cfg.connect_timeout = Duration::from_secs(2);
    cfg
}

pub async fn serve(mut stream: TcpStream, behaviour: Behaviour, log: Arc<Mutex<Vec<Received>>>) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    log.lock().unwrap().push(request.clone());
    let mut location = None;
    let (status, content_type, body) = match behaviour(&request) {
        Reply::Answer(json) => (
            200,
            "application/x-www-form-urlencoded",
            seal_form(&envelope(), MERID, &json).unwrap().into_bytes(),
        ),
        Reply::Raw {
            status,
            content_type,
            body,
        } => (status, content_type, body),
        Reply::Redirect {
            status,
            location: to,
        } => {
            location = Some(to);
            (status, "text/plain", Vec::new())
        }
        Reply::CloseAfterRead => return,
        Reply::Slow => {
            // Longer than any client timeout of these tests; the runtime
            // drops this task when the test ends.
            tokio::time::sleep(Duration::from_secs(30)).await;
            return;
        }
    };
    let location = location
        .map(|l| format!("Location: {l}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "HTTP/1.1 {status} Whatever\r\nContent-Type: {content_type}\r\n{location}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&body).await;
    let _ = stream.shutdown().await;
}

pub async fn read_request(stream: &mut TcpStream) -> Option<Received> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.lines();
    let path = lines.next()?.split_whitespace().nth(1)?.to_string();
    let mut content_length = 0;
    let mut content_type = String::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => content_length = value.trim().parse().ok()?,
                "content-type" => content_type = value.trim().to_string(),
                _ => {}
            }
        }
    }
    while buf.len() < head_end + content_length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(Received {
        path,
        content_type,
        body: buf[head_end..head_end + content_length].to_vec(),
    })
}

/// The answer JSON of a refusal, as the bank writes it.
pub fn refusal_answer_json(resp_code: &str, err_code: &str, message: &str) -> Map<String, Value> {
    string_object([
        ("RespCode", resp_code),
        ("ErrCode", err_code),
        ("ERRDESC", message),
    ])
}

/// The merchant id and order number of an inquiry request, as the bank reads them.
pub fn parse_inquiry_request(json: &Map<String, Value>) -> (MerId, OrderNo) {
    let text = |key: &str| json.get(key).and_then(Value::as_str).unwrap_or_default();
    (
        MerId::parse(text("MERID")).unwrap(),
        OrderNo::parse(text("LID-M")).unwrap(),
    )
}
