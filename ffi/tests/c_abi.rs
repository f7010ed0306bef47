//! The C ABI used as a C program would, plus a check that the header compiles.

use std::ffi::CStr;

use izyrt_ffi::*;

#[test]
fn encode_then_decode_through_the_c_abi() {
    let h = izyrt_audio_header {
        sample_rate: 48_000,
        channels: 2,
        format: 1,
        frames: 2,
        position: 128,
        origin_ns: 1000,
        echo_ns: 0,
    };
    let samples = [0.5f32, -0.5, 0.25, -0.25];
    let mut out = [0u8; 128];
    let n = unsafe {
        izyrt_encode_audio(
            out.as_mut_ptr(),
            out.len(),
            0,
            7,
            &h,
            samples.as_ptr(),
            samples.len(),
        )
    };
    assert_eq!(n, 72);
    let mut short = [0u8; 10];
    assert_eq!(
        unsafe { izyrt_encode_audio(short.as_mut_ptr(), 10, 0, 7, &h, samples.as_ptr(), 4) },
        IZYRT_ERR_TOO_SMALL
    );
    assert_eq!(
        unsafe { izyrt_encode_audio(out.as_mut_ptr(), 128, 0, 7, &h, samples.as_ptr(), 3) },
        IZYRT_ERR_INVALID
    );
    assert_eq!(
        unsafe { izyrt_encode_audio(std::ptr::null_mut(), 0, 0, 0, &h, samples.as_ptr(), 4) },
        IZYRT_ERR_NULL
    );

    let d = izyrt_decoder_new();
    assert!(!d.is_null());
    assert_eq!(
        unsafe { izyrt_decoder_feed(d, out.as_ptr(), n as usize) },
        72
    );
    let mut f = std::mem::MaybeUninit::<izyrt_frame>::uninit();
    assert_eq!(unsafe { izyrt_decoder_next(d, f.as_mut_ptr()) }, 1);
    let f = unsafe { f.assume_init() };
    assert_eq!((f.kind, f.seq, f.len, f.payload_len), (3, 7, 56, 56));
    let mut got = izyrt_audio_header::default();
    let mut s = [0f32; 4];
    assert_eq!(
        unsafe { izyrt_audio_read(f.payload, f.payload_len, &mut got, s.as_mut_ptr(), 4) },
        4
    );
    assert_eq!((got.position, got.origin_ns, s), (128, 1000, samples));

    // A malformed stream: the error names the spec code.
    assert!(unsafe { izyrt_decoder_error(d) }.is_null());
    let bad = *b"IX\x01\x09\0\0\0\0\0\0\0\0\0\0\0\0";
    let mut f2 = std::mem::MaybeUninit::<izyrt_frame>::uninit();
    assert_eq!(unsafe { izyrt_decoder_next(d, f2.as_mut_ptr()) }, 0);
    unsafe { izyrt_decoder_feed(d, bad.as_ptr(), bad.len()) };
    assert_eq!(
        unsafe { izyrt_decoder_next(d, f2.as_mut_ptr()) },
        IZYRT_ERR_PROTOCOL as i32
    );
    assert_eq!(
        unsafe { CStr::from_ptr(izyrt_decoder_error(d)) }
            .to_str()
            .unwrap(),
        "bad_magic"
    );
    unsafe { izyrt_decoder_free(d) };
    assert_eq!(
        unsafe { CStr::from_ptr(izyrt_version()) }.to_str().unwrap(),
        env!("CARGO_PKG_VERSION")
    );
}

#[test]
fn the_header_compiles_as_c() {
    let Ok(cc) = which_cc() else {
        eprintln!("no C compiler (cc): header not compiled");
        return;
    };
    let header = concat!(env!("CARGO_MANIFEST_DIR"), "/include/izyrt.h");
    let out = std::process::Command::new(cc)
        .args(["-fsyntax-only", "-Wall", "-Werror", "-x", "c", header])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn which_cc() -> Result<&'static str, ()> {
    ["cc", "gcc"]
        .into_iter()
        .find(|c| {
            std::process::Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .ok_or(())
}
