//! SCRAM and md5 exchanges against postgres-protocol's client and RFC vectors.
use super::*;
use postgres_protocol::authentication::{md5_hash as pp_md5, sasl};
use postgres_protocol::password as pp;
use sasl::{ChannelBinding as Cb, ScramSha256};

fn kind<T>(r: Result<T, AuthError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(Malformed(_)) => "malformed",
        Err(BadPassword) => "bad password",
        Err(AuthError::ChannelBinding) => "channel binding",
        Err(AuthError::Downgraded) => "downgraded",
        Err(AuthError::BindingMismatch) => "binding mismatch",
        Err(OutOfOrder) => "out of order",
    }
}

/// Runs a full exchange with postgres-protocol's client against `server`.
fn drive(mut server: ScramExchange, password: &str, cb: Cb) -> &'static str {
    let mut client = ScramSha256::new(password.as_bytes(), cb);
    kind((|| {
        let first = server.client_first(client.message())?;
        client.update(&first).expect("client accepts server-first");
        let fin = server.client_final(client.message())?;
        client.finish(&fin).expect("client verifies server");
        Ok(())
    })())
}

/// Exchange with a cheap secret and server nonce "SRV".
fn test_exchange() -> ScramExchange {
    let secret = ScramSecret::from_password_with("p", b"s", 1);
    ScramExchange::with_server_nonce(secret, "SRV".into())
}

/// Outcome of `client_final(msg)` after a valid client-first with nonce "abc".
fn final_kind(msg: &[u8]) -> &'static str {
    let mut ex = test_exchange();
    ex.client_first(b"n,,n=u,r=abc").expect("client-first");
    kind(ex.client_final(msg))
}

#[test]
fn rfc7677_vector() {
    let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("base64");
    let secret = ScramSecret::from_password_with("pencil", &salt, 4096);
    let server_nonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    let mut ex = ScramExchange::with_server_nonce(secret, server_nonce.into());
    let sf = ex.client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    let nonce = format!("rOprNGfwEbeRWgbNEkqO{server_nonce}");
    let expected = format!("r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
    assert_eq!(sf.expect("client-first"), expected.as_bytes());
    let cf = format!("c=biws,r={nonce},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
    let fin = ex.client_final(cf.as_bytes()).expect("proof accepted");
    assert_eq!(fin, b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    assert_eq!(kind(ex.client_final(cf.as_bytes())), "out of order");
}

#[test]
fn verifier_string_matches_postgres() {
    // Vector from postgres-protocol's tests (identical to PostgreSQL's output).
    let pg = "SCRAM-SHA-256$4096:AQIDBAUGBwgJCgsMDQ4PEA==$8rrDg00OqaiWXJ7p+sCgHEIaBSHY89ZJl3mfIsf32oY=:05L1f+yZbiN8O0AnO40Og85NNRhvzTS57naKRWCcsIA=";
    let salt: Vec<u8> = (1..=16).collect();
    let ours = ScramSecret::from_password_with("secret", &salt, 4096);
    assert_eq!(ours.to_verifier_string(), pg);
    assert_eq!(ScramSecret::parse(pg), Some(ours));
    let random = ScramSecret::from_password("x");
    assert_eq!((random.salt.len(), random.iterations), (16, 4096));
    let round_trip = ScramSecret::parse(&random.to_verifier_string());
    assert_eq!(round_trip, Some(random));
    let short_key = pg.replace("05L1", "05L");
    let zero_iterations = pg.replace("$4096:", "$0:");
    for bad in ["", "SCRAM-SHA-256$", "md5", &zero_iterations, &short_key] {
        assert_eq!(ScramSecret::parse(bad), None, "{bad}");
    }
}

#[test]
fn full_exchange_with_postgres_protocol_client() {
    let pg_secret = pp::scram_sha_256(b"s3cret");
    let secret = ScramSecret::parse(&pg_secret).expect("verifier parses");
    let ex = || ScramExchange::new(secret.clone());
    assert_eq!(drive(ex(), "s3cret", Cb::unsupported()), "ok"); // "n,,"
    assert_eq!(drive(ex(), "s3cret", Cb::unrequested()), "ok"); // "y,,"
    assert_eq!(drive(ex(), "wrong", Cb::unsupported()), "bad password");
    let plus = Cb::tls_server_end_point(vec![1, 2, 3]);
    assert_eq!(drive(ex(), "s3cret", plus), "channel binding");
    // Over TLS: -PLUS binds to the certificate's hash; anything else is caught.
    let over_tls = |mechanism: &str| {
        let mut e = ex();
        e.bind_channel(Some(&[1, 2, 3]), mechanism);
        e
    };
    let plus = |hash: Vec<u8>| Cb::tls_server_end_point(hash);
    let with_plus = over_tls("SCRAM-SHA-256-PLUS");
    assert_eq!(drive(with_plus, "s3cret", plus(vec![1, 2, 3])), "ok");
    let tampered = over_tls("SCRAM-SHA-256-PLUS");
    assert_eq!(
        drive(tampered, "s3cret", plus(vec![9, 9, 9])),
        "binding mismatch"
    );
    let wrong_password = over_tls("SCRAM-SHA-256-PLUS");
    assert_eq!(
        drive(wrong_password, "bad", plus(vec![1, 2, 3])),
        "bad password"
    );
    let no_binding = over_tls("SCRAM-SHA-256-PLUS");
    assert_eq!(drive(no_binding, "s3cret", Cb::unsupported()), "malformed");
    assert_eq!(
        drive(over_tls("SCRAM-SHA-256"), "s3cret", Cb::unsupported()),
        "ok"
    );
    let downgrade = over_tls("SCRAM-SHA-256");
    assert_eq!(drive(downgrade, "s3cret", Cb::unrequested()), "downgraded");
    let plus_without_choosing_it = over_tls("SCRAM-SHA-256");
    assert_eq!(
        drive(plus_without_choosing_it, "s3cret", plus(vec![1, 2, 3])),
        "channel binding"
    );
    let derived = ScramExchange::new(ScramSecret::from_password("pw"));
    assert_eq!(drive(derived, "pw", Cb::unsupported()), "ok");
}

#[test]
fn mock_always_fails_and_salt_is_stable() {
    let salt_for = |user| {
        let first = mock_exchange_for(user).client_first(b"n,,n=,r=abc");
        let first = String::from_utf8(first.expect("answers")).expect("utf8");
        first.split(',').nth(1).map(str::to_owned)
    };
    assert_eq!(salt_for("alice"), salt_for("alice"));
    assert_ne!(salt_for("alice"), salt_for("bob"));
    let mock = drive(mock_exchange(), "", Cb::unsupported());
    assert_eq!(mock, "bad password");
}

#[test]
fn malformed_client_first() {
    let cases = "|n|n,|x,,n=u,r=abc|n,a=admin,n=u,r=abc|n,,m=ext,n=u,r=abc|n,,n=u|n,,n=u,r=|n,,r=abc|n,,n=u,r=a\x7fb";
    let non_utf8: &[u8] = b"n,,n=\xff,r=abc";
    for c in cases.split('|').map(str::as_bytes).chain([non_utf8]) {
        let mut ex = test_exchange();
        assert_eq!(kind(ex.client_first(c)), "malformed", "{c:?}");
        assert_eq!(kind(ex.client_first(b"n,,n=u,r=abc")), "out of order");
    }
    let p = test_exchange().client_first(b"p=tls-unique,,n=,r=a");
    assert_eq!(kind(p), "channel binding");
    let early_final = test_exchange().client_final(b"c=biws,r=x,p=AA==");
    assert_eq!(kind(early_final), "out of order");
}

#[test]
fn malformed_client_final() {
    let proof = B64.encode([0u8; 32]);
    let cases = [
        String::new(),
        "c=biws,r=abcSRV".into(),
        format!("r=abcSRV,p={proof}"),
        format!("c=eSws,r=abcSRV,p={proof}"), // "y,," echo after "n,,"
        format!("c=b!ws,r=abcSRV,p={proof}"),
        format!("c=biws,r=abcOTHER,p={proof}"),
        format!("c=biws,p={proof}"),
        "c=biws,r=abcSRV,p=AAAA".into(),
        "c=biws,r=abcSRV,p=not base64!".into(),
        format!("c=biws,r=abcSRV,p={proof},x=trailing"),
    ];
    let non_utf8 = b"c=biws,r=abcSRV,p=\xff".to_vec();
    for c in cases.into_iter().map(String::into_bytes).chain([non_utf8]) {
        assert_eq!(final_kind(&c), "malformed", "{c:?}");
    }
    let wrong_proof = format!("c=biws,r=abcSRV,p={proof}");
    assert_eq!(final_kind(wrong_proof.as_bytes()), "bad password");
}

#[test]
fn md5_round_trip() {
    let stored = md5_hash("postgres", "secret");
    assert_eq!(stored, "md553f48b7c4b76a86ce72276c5755f217d"); // md5("secretpostgres")
    assert_eq!(stored, pp::md5(b"secret", "postgres"));
    let salt = [1, 2, 3, 4];
    let resp = md5_client_response("postgres", "secret", salt);
    assert_eq!(resp, "md5bb41a296aab6baccb36ff243a562abff");
    assert_eq!(resp, pp_md5(b"postgres", b"secret", salt));
    assert!(md5_verify(&stored, salt, &resp));
    assert!(!md5_verify(&stored, [4, 3, 2, 1], &resp));
    let wrong = md5_client_response("postgres", "wrong", salt);
    assert!(!md5_verify(&stored, salt, &wrong));
    assert!(!md5_verify(&stored, salt, ""));
    assert!(!md5_verify("SCRAM-SHA-256$...", salt, &resp));
    assert_ne!(random_salt(), random_salt()); // 2^-32 flake odds
}
