//! Any bytes: parsing never panics; what parses writes back byte for byte; what is
//! rewritten, if it parsed, still parses, with the same shape.
#![no_main]

use libfuzzer_sys::fuzz_target;
use php_serial::{UrlRewrite, Value, parse, rewrite};

fuzz_target!(|data: &[u8]| {
    let parsed = parse(data);
    if let Ok(value) = &parsed {
        assert_eq!(value.to_bytes(), data, "write(parse(x)) != x");
    }

    // A longer and a shorter target, and a blind replacer of one byte.
    let longer = UrlRewrite::new("http://a.io:81", "https://staging.a.io:18082/sub").unwrap();
    let shorter = UrlRewrite::new("https://www.example.com/blog", "http://e.io").unwrap();
    let blind = |text: &[u8]| {
        text.contains(&b'x').then(|| {
            let mut out = Vec::with_capacity(text.len() + 8);
            for &b in text {
                if b == b'x' {
                    out.extend_from_slice(b"yy");
                } else {
                    out.push(b);
                }
            }
            out
        })
    };
    for out in [
        longer.apply(data),
        shorter.apply(data),
        rewrite(data, &blind),
    ] {
        let Some(out) = out else { continue };
        assert_ne!(out, data, "Some(unchanged bytes)");
        if let Ok(before) = &parsed {
            let after = parse(&out).expect("a rewritten value no longer parses");
            assert!(same_shape(before, &after), "rewriting changed the shape");
        }
    }
});

fn same_shape(a: &Value<'_>, b: &Value<'_>) -> bool {
    use Value::*;
    let entries = |x: &[(Value<'_>, Value<'_>)], y: &[(Value<'_>, Value<'_>)]| {
        x.len() == y.len()
            && x.iter()
                .zip(y)
                .all(|((ka, va), (kb, vb))| same_shape(ka, kb) && same_shape(va, vb))
    };
    match (a, b) {
        (Str(_), Str(_)) => true,
        (Array(x), Array(y)) => entries(x, y),
        (Object { class: c, props: x }, Object { class: d, props: y }) => c == d && entries(x, y),
        (Custom { class: c, .. }, Custom { class: d, .. }) => c == d,
        _ => a == b,
    }
}
