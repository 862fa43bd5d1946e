//! Several merchants at the bank, end to end over real HTTP on 127.0.0.1 with
//! the real envelope: each merchant's client, built from the settings as
//! refundd builds it, sends its own MERID sealed with its own keys (and the
//! bank's answer, sealed with them, opens only for it), a merchant with an
//! endpoint of its own calls there, and `refundd check --bank` asks the bank
//! once for each merchant, naming the one whose keys are wrong.

use crate::common::fake_bank::read_request;
use crate::common::{run_off_runtime, Rig};
use refundd::config::{Settings, Sources};
use refundd::ctbc::envelope::Envelope;
use refundd::ctbc::wire::{open_form, seal_form, string_object};
use refundd::ctbc::{CtbcError, OrderNo};
use refundd::sim::{REFERENCE_IV, REFERENCE_MAC_KEY, REFERENCE_MER_ID};
use serde_json::{Map, Value};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// A merchant as the bank knows it: its merchant id and the keys it issued.
#[derive(Clone, Copy)]
struct Issued {
    mer_id: &'static str,
    key: &'static str,
    iv: &'static str,
}

impl Issued {
    fn envelope(&self) -> Envelope {
        Envelope::new(self.key.as_bytes(), self.iv.as_bytes()).unwrap()
    }
}

const DEFAULT: Issued = Issued {
    mer_id: REFERENCE_MER_ID,
    key: REFERENCE_MAC_KEY,
    iv: REFERENCE_IV,
};
const OUTLET: Issued = Issued {
    mer_id: "7654321",
    key: "OUTLETKEYOUTLETKEYOUTLET",
    iv: "outlet8!",
};
const BRAND: Issued = Issued {
    mer_id: "5550001",
    key: "BRANDBKEYBRANDBKEYBRANDB",
    iv: "brandb8!",
};

/// One request as the bank read it: the MERID in clear, and the request
/// opened with the keys it issued to that merchant (None: they do not open it).
#[derive(Debug, Clone)]
struct Heard {
    mer_id: String,
    opened: Option<Map<String, Value>>,
    body: Vec<u8>,
}

/// A bank holding several merchants' keys, as CTBC does: it opens each
/// request with the keys of the merchant its MERID names, and answers
/// "order not found" sealed with them, for that merchant.
struct BankOfMerchants {
    addr: std::net::SocketAddr,
    heard: Arc<Mutex<Vec<Heard>>>,
}

impl BankOfMerchants {
    async fn start(merchants: &[Issued]) -> BankOfMerchants {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let (log, merchants) = (heard.clone(), merchants.to_vec());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer_as_the_bank(stream, merchants.clone(), log.clone()));
            }
        });
        BankOfMerchants { addr, heard }
    }

    fn url(&self) -> String {
        format!("http://{}/MicroPos", self.addr)
    }

    fn heard(&self) -> Vec<Heard> {
        self.heard.lock().unwrap().clone()
    }
}

async fn answer_as_the_bank(
    mut stream: TcpStream,
    merchants: Vec<Issued>,
    log: Arc<Mutex<Vec<Heard>>>,
) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&request.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mer_id = form
        .iter()
        .find(|(k, _)| k == "MERID")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let Some(issued) = merchants.iter().find(|m| m.mer_id == mer_id) else {
        return;
    };
    let opened = open_form(&issued.envelope(), &request.body).ok();
    log.lock().unwrap().push(Heard {
        mer_id: mer_id.clone(),
        opened: opened.map(|o| o.json),
        body: request.body.clone(),
    });
    let not_found = string_object([
        ("RespCode", "99"),
        ("ErrCode", "01"),
        ("ERRDESC", "Order not found"),
    ]);
    let body = seal_form(&issued.envelope(), &mer_id, &not_found).unwrap();
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The settings of the default merchant and `outlet` at `url`, and of
/// `brand_b` at `brand_url`, every key in the environment.
fn settings_of(url: &str, brand_url: &str) -> Settings {
    let env = [
        ("REFUNDD__CTBC__BASE_URL", url),
        ("REFUNDD__CTBC__MER_ID", DEFAULT.mer_id),
        ("REFUNDD__CTBC__MAC_KEY", DEFAULT.key),
        ("REFUNDD__CTBC__IV", DEFAULT.iv),
        ("REFUNDD__CTBC__MERCHANTS__OUTLET__MER_ID", OUTLET.mer_id),
        ("REFUNDD__CTBC__MERCHANTS__OUTLET__MAC_KEY", OUTLET.key),
        ("REFUNDD__CTBC__MERCHANTS__OUTLET__IV", OUTLET.iv),
        ("REFUNDD__CTBC__MERCHANTS__BRAND_B__MER_ID", BRAND.mer_id),
        ("REFUNDD__CTBC__MERCHANTS__BRAND_B__MAC_KEY", BRAND.key),
        ("REFUNDD__CTBC__MERCHANTS__BRAND_B__IV", BRAND.iv),
        ("REFUNDD__CTBC__MERCHANTS__BRAND_B__BASE_URL", brand_url),
    ];
    let sources = Sources {
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    Settings::load(&sources).unwrap()
}

#[tokio::test]
async fn each_merchants_call_goes_out_with_its_merchant_id_sealed_with_its_keys() {
    let bank = BankOfMerchants::start(&[DEFAULT, OUTLET]).await;
    let brand_bank = BankOfMerchants::start(&[BRAND]).await;
    let settings = settings_of(&bank.url(), &brand_bank.url());
    let merchants = settings.require_merchants().unwrap();
    // The process's one recorder, shared by every test: counts read as present.
    let metrics = refundd::ops::metrics::install_metrics();
    let order = OrderNo::parse("ORDER001").unwrap();
    for (name, client) in merchants.iter() {
        // "No such order", sealed with the merchant's keys for its MERID:
        // the answer opened with this client's keys and names its merchant.
        let answer = client.inquiry(&order).await;
        assert!(
            matches!(answer, Err(CtbcError::UnknownOrder { .. })),
            "{name:?}: {answer:?}"
        );
        assert!(!client.answer_did_not_open(), "{name:?}");
    }

    let heard = bank.heard();
    let ids: Vec<&str> = heard.iter().map(|h| h.mer_id.as_str()).collect();
    assert_eq!(
        ids,
        [DEFAULT.mer_id, OUTLET.mer_id],
        "one call each, in order"
    );
    for h in &heard {
        let json = h
            .opened
            .as_ref()
            .unwrap_or_else(|| panic!("{}'s request does not open with its own keys", h.mer_id));
        assert_eq!(
            json["MERID"],
            h.mer_id.as_str(),
            "the sealed MERID is the clear one"
        );
        assert_eq!(json["LID-M"], "ORDER001");
    }
    // Each was sealed with its own merchant's keys, not the other's.
    assert!(open_form(&DEFAULT.envelope(), &heard[1].body).is_err());
    assert!(open_form(&OUTLET.envelope(), &heard[0].body).is_err());
    // brand_b called its own endpoint, and only it did.
    let brand = brand_bank.heard();
    assert_eq!(brand.len(), 1, "{brand:?}");
    assert_eq!(brand[0].mer_id, BRAND.mer_id);
    assert!(brand[0].opened.is_some(), "sealed with brand_b's keys");
    // Each merchant's calls are counted under its name.
    let page = metrics.render();
    for merchant in ["default", "outlet", "brand_b"] {
        let counted = page.lines().any(|l| {
            l.starts_with("refundd_gateway_calls_total{")
                && l.contains(r#"operation="inquiry""#)
                && l.contains(r#"result="unknown_order""#)
                && l.contains(&format!(r#"merchant="{merchant}""#))
        });
        assert!(counted, "{merchant}'s call not counted:\n{page}");
    }
}

#[tokio::test]
async fn an_answer_sealed_for_one_merchant_does_not_open_for_another() {
    // The bank knows outlet's id only with the default merchant's keys: the
    // keys outlet's settings give are not the ones it issued.
    let swapped = Issued {
        mer_id: OUTLET.mer_id,
        ..DEFAULT
    };
    let bank = BankOfMerchants::start(&[DEFAULT, swapped]).await;
    let brand_bank = BankOfMerchants::start(&[BRAND]).await;
    let merchants = settings_of(&bank.url(), &brand_bank.url())
        .require_merchants()
        .unwrap();
    let outlet = refundd::domain::merchant::MerchantName::parse("outlet").unwrap();
    let client = merchants.for_merchant(Some(&outlet)).unwrap();
    let e = client
        .inquiry(&OrderNo::parse("ORDER001").unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "bad_answer", "{e}");
    assert!(client.answer_did_not_open());
    assert!(bank.heard()[0].opened.is_none(), "nor did its request");
    let default = merchants.default_client();
    assert!(
        !default.answer_did_not_open(),
        "the default merchant is untouched"
    );
}

#[tokio::test]
async fn check_asks_the_bank_once_for_each_merchant_and_names_the_one_whose_keys_are_wrong() {
    let rig = Rig::new().await;
    let bank = BankOfMerchants::start(&[DEFAULT, OUTLET]).await;
    let check = |outlet_iv: &str| {
        let mut cmd = rig.refundd("check");
        cmd.arg("--bank")
            .env("REFUNDD__CTBC__BASE_URL", bank.url())
            .env("REFUNDD__CTBC__MERCHANTS__OUTLET__MER_ID", OUTLET.mer_id)
            .env("REFUNDD__CTBC__MERCHANTS__OUTLET__MAC_KEY", OUTLET.key)
            .env("REFUNDD__CTBC__MERCHANTS__OUTLET__IV", outlet_iv);
        cmd
    };
    let (code, text, _) = run_off_runtime(check(OUTLET.iv)).await;
    assert_eq!(code, Some(0), "{text}");
    for at in [
        format!("merchant default (MERID {})", DEFAULT.mer_id),
        format!("merchant outlet (MERID {})", OUTLET.mer_id),
    ] {
        assert!(text.contains(&format!("{at}: the bank answered")), "{text}");
    }
    assert!(
        text.contains("ctbc.merchants.outlet.mac_key and ctbc.merchants.outlet.iv"),
        "{text}"
    );

    let (code, text, _) = run_off_runtime(check("wrongiv!")).await;
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("merchant outlet (MERID 7654321): the bank's answer does not open with refundd's keys: wrong ctbc.merchants.outlet.mac_key or ctbc.merchants.outlet.iv"),
        "{text}"
    );
    assert!(
        text.contains("merchant default (MERID 1234567): the bank answered"),
        "the default merchant's keys still work: {text}"
    );
    for secret in [DEFAULT.key, DEFAULT.iv, OUTLET.key, OUTLET.iv, "wrongiv!"] {
        assert!(!text.contains(secret), "{secret} shown: {text}");
    }
}
