//! QR images decoded by an independent reader (rqrr) give back the exact text.

use std::net::SocketAddr;

use image::GrayImage;
use maestral_net::joincode::JoinCode;
use maestral_net::pairing::{encode_answer, encode_offer};
use maestral_net::qr::{
    DEFAULT_MODULE_PX, QrError, QrImageError, decode_qr, qr_image, qr_image_min_size, qr_info,
    qr_png,
};

const FP: &str = "sha-256 5B:0B:AB:01:23:45:67:89:AB:CD:EF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:10:20:30:40:7F";

fn sdp(setup: &str, candidates: &[&str]) -> String {
    let mut lines = vec![
        "v=0".to_owned(),
        "o=- 1234567890 1234567890 IN IP4 0.0.0.0".into(),
        "s=-".into(),
        "t=0 0".into(),
        format!("a=fingerprint:{FP}"),
        "a=group:BUNDLE 0".into(),
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel".into(),
        "c=IN IP4 0.0.0.0".into(),
        format!("a=setup:{setup}"),
        "a=mid:0".into(),
        "a=sctp-port:5000".into(),
        "a=ice-ufrag:abcdEFGHijklMNOP".into(),
        "a=ice-pwd:abcdefghijklmnopqrstuvwxABCDEFGH".into(),
    ];
    lines.extend(candidates.iter().map(|c| format!("a=candidate:{c}")));
    lines.join("\r\n") + "\r\n"
}

fn join_code() -> String {
    let host: SocketAddr = "[fe80::a1b2:c3d4:e5f6:789]:47110".parse().expect("address");
    // 256 bits of URL-safe base64, twice the protocol's minimum, to exercise a long token.
    let token = "Zm9vYmFyLWJhei1xdXV4LXF1dXotY29yZ2UtZ3JhdWx0LWdhcnBseQ_-";
    JoinCode::new(host, "0123456789abcdef", token, FP).expect("join code").to_string()
}

fn offer_code() -> String {
    encode_offer(&sdp("actpass", &["1 1 udp 2130706431 192.168.1.20 51234 typ host"]))
        .expect("offer code")
}

fn answer_code() -> String {
    encode_answer(&sdp(
        "active",
        &[
            "1 1 udp 2130706431 192.168.1.21 40000 typ host",
            "2 1 udp 2130706430 fe80::1c2b:3aff:fe4d:5e6f 40001 typ host",
        ],
    ))
    .expect("answer code")
}

/// Decodes the one QR code in `image` with rqrr, returning its text and version.
fn read(image: GrayImage) -> (String, usize) {
    let mut prepared = rqrr::PreparedImage::prepare(image);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "expected exactly one QR code");
    let (meta, text) = grids[0].decode().expect("rqrr decodes it");
    (text, meta.version.0)
}

fn check(text: &str, module_px: u32) -> usize {
    let (decoded, version) = read(qr_image(text, module_px).expect("QR image"));
    assert_eq!(decoded, text);
    let info = qr_info(text).expect("info");
    assert_eq!(usize::from(info.version), version);
    assert_eq!(info.modules, 17 + 4 * u32::from(info.version));
    version
}

#[test]
fn codes_decode_back_to_their_exact_text() {
    for (name, text) in [("join", join_code()), ("offer", offer_code()), ("answer", answer_code())]
    {
        let version = check(&text, DEFAULT_MODULE_PX);
        println!("{name}: {} characters, QR version {version} (level M): {text}", text.len());
    }
}

#[test]
fn qr_versions_are_small() {
    // Recorded so that a change in the codes' size shows up here.
    assert_eq!(qr_info(&offer_code()).expect("info").version, 5);
    assert_eq!(qr_info(&answer_code()).expect("info").version, 6);
    // The long IPv6 test code, and a typical one of an older session: IPv4 host, 128-bit token
    // in base64 (22 characters), a lower-case session id, in byte mode. (Version 11 and 9 as
    // app links; a new session's code is smaller still: tests/joinurl.rs.)
    assert_eq!(qr_info(&join_code()).expect("info").version, 9);
    let typical = JoinCode::new(
        "192.168.1.20:47110".parse().expect("address"),
        "0123456789abcdef",
        "AbCdEfGhIjKlMnOpQrStUv",
        FP,
    )
    .expect("join code")
    .to_string();
    assert_eq!(qr_info(&typical).expect("info").version, 6);
    assert_eq!(check(&typical, DEFAULT_MODULE_PX), 6);
}

#[test]
fn small_scale_still_decodes() {
    for text in [join_code(), offer_code(), answer_code()] {
        check(&text, 2);
    }
}

#[test]
fn images_have_a_quiet_zone_and_the_asked_size() {
    let text = offer_code();
    let info = qr_info(&text).expect("info");
    let image = qr_image(&text, 3).expect("image");
    // 4 light modules on each side.
    assert_eq!(image.width(), (info.modules + 8) * 3);
    assert_eq!(image.width(), image.height());
    for x in 0..image.width() {
        assert_eq!(image.get_pixel(x, 0).0, [255]);
        assert_eq!(image.get_pixel(x, 4 * 3 - 1).0, [255]);
    }
    assert_eq!(image.get_pixel(4 * 3, 4 * 3).0, [0], "finder pattern corner");

    let fitted = qr_image_min_size(&text, 300).expect("image");
    assert!(fitted.width() >= 300 && fitted.width().is_multiple_of(info.modules + 8));
    assert_eq!(read(fitted).0, text);
}

#[test]
fn png_round_trip() {
    for text in [join_code(), offer_code(), answer_code()] {
        let png = qr_png(&text).expect("PNG");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let image = image::load_from_memory(&png).expect("loads").to_luma8();
        assert_eq!(read(image).0, text);
    }
}

#[test]
fn too_long_text_is_a_readable_error() {
    let e = qr_image(&"x".repeat(5000), 1).expect_err("too long");
    assert!(matches!(e, QrImageError::TooLong(5000)));
    assert!(e.to_string().contains("show it as text"), "{e}");
}

#[test]
fn decode_qr_reads_back_a_join_code_the_crate_drew_in_colour_and_at_photo_size() {
    let code = join_code();
    let grey = qr_image_min_size(&code, 400).expect("QR image");
    assert_eq!(decode_qr(&image::DynamicImage::ImageLuma8(grey.clone())).expect("decoded"), code);

    // A large RGB picture with the code in one corner of a light grey background, as a photo
    // or a screenshot would be: the scaled-down try must still read it.
    let mut photo = image::RgbImage::from_pixel(2400, 1800, image::Rgb([200, 200, 190]));
    image::imageops::overlay(
        &mut photo,
        &image::DynamicImage::ImageLuma8(qr_image(&code, 12).expect("QR image")).to_rgb8(),
        100,
        200,
    );
    assert_eq!(decode_qr(&image::DynamicImage::ImageRgb8(photo)).expect("decoded"), code);
}

#[test]
fn decode_qr_says_no_qr_code_for_a_picture_without_one() {
    let mut picture = image::RgbImage::from_pixel(640, 480, image::Rgb([255, 255, 255]));
    for (x, y, px) in picture.enumerate_pixels_mut() {
        // Stripes and a gradient: shapes, but nothing like finder patterns.
        let v = if (x / 40) % 2 == 0 { (y % 256) as u8 } else { 255 };
        *px = image::Rgb([v, v, v]);
    }
    let error = decode_qr(&image::DynamicImage::ImageRgb8(picture)).expect_err("no QR code");
    assert!(matches!(error, QrError::NotFound), "{error:?}");
    assert_eq!(error.to_string(), "no QR code found");
}
