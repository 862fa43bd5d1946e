//! Benchmarks of the CTBC envelope: sealing and opening a typical inquiry
//! request and a typical inquiry answer, the same through the whole form, and
//! the raw 3DES-EDE CBC cipher alone beside them, so the envelope's cost can be
//! read against the cipher's lower bound (see BENCHMARKS.md).

// A benchmark: a failure to set up is a panic with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cbc::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use des::TdesEde3;
use refundd::ctbc::call_body::inquiry_request_json;
use refundd::ctbc::operation::DEFAULT_SW_REVISION;
use refundd::ctbc::types::{AuthCode, MaskedPan, MerId, Money, OrderNo, TxState, Xid};
use refundd::ctbc::wire::json_text;
use refundd::ctbc::wire::{open_answer, seal_form};
use refundd::ctbc::Envelope;
use refundd::ctbc::Inquiry;
use refundd::sim::{REFERENCE_IV, REFERENCE_MAC_KEY, REFERENCE_MER_ID};

fn envelope() -> Envelope {
    Envelope::new(REFERENCE_MAC_KEY.as_bytes(), REFERENCE_IV.as_bytes()).unwrap()
}

/// The JSON text of an inquiry request as the client sends it.
fn inquiry_request() -> String {
    let mer_id = MerId::parse(REFERENCE_MER_ID).unwrap();
    let order_no = OrderNo::parse("A20261127000123").unwrap();
    json_text(&inquiry_request_json(
        &mer_id,
        &order_no,
        DEFAULT_SW_REVISION,
    ))
}

/// The JSON text of an accepted inquiry answer for a captured transaction.
fn inquiry_answer() -> String {
    let answer = Inquiry {
        state: TxState::CapturedNotSettled,
        xid: Some(Xid::parse("O-OBJECT-20261127101500-0001").unwrap()),
        auth_code: Some(AuthCode::parse("A1B2C3").unwrap()),
        auth_amount: Some(Money::parse("901 1500 0").unwrap()),
        pan: Some(MaskedPan::from_bank("411111******1111")),
        txn_date: Some("20261127".into()),
        txn_time: Some("101500".into()),
        eci: Some("05".into()),
        err_code: "00".into(),
        records: Vec::new(),
    };
    json_text(&answer.to_answer_json())
}

fn bench_envelope(c: &mut Criterion) {
    let env = envelope();
    for (name, json) in [
        ("inquiry_request", inquiry_request()),
        ("inquiry_answer", inquiry_answer()),
    ] {
        let sealed = env.seal(&json).unwrap();
        assert_eq!(env.open(&sealed).unwrap(), json);
        let mut g = c.benchmark_group(format!("envelope/{name}"));
        g.throughput(Throughput::Bytes(json.len() as u64));
        g.bench_function("seal", |b| b.iter(|| env.seal(black_box(&json)).unwrap()));
        g.bench_function("open", |b| b.iter(|| env.open(black_box(&sealed)).unwrap()));
        g.bench_function("seal+open", |b| {
            b.iter(|| env.open(&env.seal(black_box(&json)).unwrap()).unwrap())
        });
        g.finish();
    }

    // The whole answer path as the client meets it: form body, envelope, JSON.
    let answer = serde_json::from_str(&inquiry_answer()).unwrap();
    let body = seal_form(&env, REFERENCE_MER_ID, &answer).unwrap();
    c.bench_function("wire/inquiry_answer/seal_form", |b| {
        b.iter(|| seal_form(&env, REFERENCE_MER_ID, black_box(&answer)).unwrap())
    });
    c.bench_function("wire/inquiry_answer/open_answer", |b| {
        b.iter(|| open_answer(&env, black_box(body.as_bytes())).unwrap())
    });
}

type Enc = cbc::Encryptor<TdesEde3>;
type Dec = cbc::Decryptor<TdesEde3>;

/// The cipher alone over 200 bytes (a little more than one sealed inquiry):
/// the floor under any envelope implementation with these keys.
fn bench_cipher(c: &mut Criterion) {
    let key: [u8; 24] = REFERENCE_MAC_KEY.as_bytes().try_into().unwrap();
    let iv: [u8; 8] = REFERENCE_IV.as_bytes().try_into().unwrap();
    let plain = vec![b'x'; 200];
    let ct = Enc::new(&key.into(), &iv.into()).encrypt_padded_vec_mut::<Pkcs7>(&plain);
    let mut g = c.benchmark_group("cipher/3des_ede_cbc_200B");
    g.throughput(Throughput::Bytes(plain.len() as u64));
    g.bench_function("encrypt", |b| {
        b.iter(|| {
            Enc::new(&key.into(), &iv.into()).encrypt_padded_vec_mut::<Pkcs7>(black_box(&plain))
        })
    });
    g.bench_function("decrypt", |b| {
        b.iter(|| {
            Dec::new(&key.into(), &iv.into())
                .decrypt_padded_vec_mut::<Pkcs7>(black_box(&ct))
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench_envelope, bench_cipher);
criterion_main!(benches);
