//! Join codes as web addresses (`HTTP://HOST:PORT/#1.…`): what the QR holds for phones, and what
//! the app accepts as well as `maestral://join?…`.

use maestral_net::joincode::{JoinCode, JoinCodeError};
use maestral_net::qr::qr_info;

const FP: &str = "sha-256 5B:0B:AB:01:23:45:67:89:AB:CD:EF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:10:20:30:40:7F";
/// A token and session id as a Master makes them (base32, upper-case hex).
const TOKEN: &str = "MFRGGZDFMZTWQ2LKNNWG23TPOA";
const SESSION: &str = "0123456789ABCDEF";

fn code(host: &str) -> JoinCode {
    JoinCode::new(host.parse().expect("address"), SESSION, TOKEN, FP).expect("a join code")
}

/// The characters a QR code's alphanumeric mode holds.
fn alphanumeric(c: char) -> bool {
    c.is_ascii_digit() || c.is_ascii_uppercase() || " $%*+-./:".contains(c)
}

#[test]
fn the_web_form_round_trips_with_everything_secret_in_the_fragment() {
    let c = code("192.168.1.20:47110");
    let url = c.url();
    let (address, fragment) = url.split_once('#').expect("a fragment");
    assert_eq!(address, "HTTP://192.168.1.20:47110/", "only the listener before the fragment");
    assert!(fragment.starts_with(&format!("1.{SESSION}.{TOKEN}.")), "{fragment}");
    assert!(!address.contains(TOKEN) && !address.contains(SESSION));
    assert!(url.replace('#', "").chars().all(alphanumeric), "all but # in the compact mode: {url}");
    assert_eq!(url.parse::<JoinCode>(), Ok(c.clone()));
    // Lower case, as a browser shows it, and with what a scanner or a browser may add.
    assert_eq!(url.to_lowercase().parse::<JoinCode>().map(|p| p.host), Ok(c.host));
    let with_query = url.replace("47110/", "47110/?utm=x");
    assert_eq!(with_query.parse::<JoinCode>(), Ok(c.clone()));
    assert_eq!(format!("  {url}\n").parse::<JoinCode>(), Ok(c.clone()));
    assert_eq!(format!("{url}.LATER.FIELDS").parse::<JoinCode>(), Ok(c));
    let v6 = code("[fe80::1]:4711");
    assert_eq!(v6.url().parse::<JoinCode>(), Ok(v6));
}

#[test]
fn an_older_sessions_id_and_token_still_travel_in_the_web_form() {
    let c = JoinCode::new("10.0.0.2:5000".parse().expect("addr"), "a.b#c%d", "AbC-dEf_12", FP)
        .expect("code");
    let url = c.url();
    assert!(url.contains(".a%2Eb%23c%25d.AbC-dEf_12."), "{url}");
    assert_eq!(url.parse::<JoinCode>(), Ok(c));
}

#[test]
fn the_web_form_needs_a_smaller_qr_code_than_the_app_link() {
    let c = code("192.168.100.200:47110");
    let web = qr_info(&c.url()).expect("fits");
    let app = qr_info(&c.link()).expect("fits");
    assert!(web.version <= 6, "web form at version {}", web.version);
    assert!(web.version < app.version, "{} vs {}", web.version, app.version);
}

fn err(text: &str) -> JoinCodeError {
    text.parse::<JoinCode>().expect_err("refused")
}

#[test]
fn a_web_address_that_is_not_a_join_code_says_so() {
    let url = code("10.0.0.2:5000").url();
    assert_eq!(err("http://example.com/"), JoinCodeError::NotAJoinCode);
    assert_eq!(err("http://example.com/#section"), JoinCodeError::NotAJoinCode);
    assert_eq!(err(&url.replace("5000/", "5000/other")), JoinCodeError::NotAJoinCode);
    assert_eq!(err(&url.replace("#1.", "#2.")), JoinCodeError::NewerLayout);
    assert!(matches!(
        err(&url.replace("10.0.0.2:5000", "host.local:5000")),
        JoinCodeError::BadHost(_)
    ));
    assert!(matches!(err(&url.replace(":5000", "")), JoinCodeError::BadHost(_)));
    assert!(matches!(err(&url.replace(":5000", ":0")), JoinCodeError::BadHost(_)));
    let fields: Vec<&str> = url.split('.').collect();
    let cut = |n: usize| fields[..fields.len() - n].join(".");
    assert_eq!(err(&cut(1)), JoinCodeError::MissingParameter("fingerprint"));
    assert_eq!(err(&cut(2)), JoinCodeError::MissingParameter("token"));
    let fp = fields.last().expect("fp");
    assert_eq!(err(&url.replace(fp, &fp[1..])), JoinCodeError::BadFingerprint);
    assert_eq!(err(&url.replace(fp, "11111")), JoinCodeError::BadFingerprint);
    assert_eq!(err(&url.replace(TOKEN, "")), JoinCodeError::EmptyToken);
    assert_eq!(err(&url.replace(TOKEN, "%FF")), JoinCodeError::BadEncoding("token"));
}
