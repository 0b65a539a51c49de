use super::*;

#[test]
fn payloads_round_trip_and_stay_small() {
    let mut p = Pending::default();
    p.tables.insert("public.users".into());
    p.tables.insert("\"We\"\"ird\\\"".into());
    let out = p.payloads("abc");
    assert_eq!(out.len(), 1);
    let m: Message = serde_json::from_str(&out[0]).expect("json");
    assert_eq!(m.instance, "abc");
    assert_eq!(m.tables, ["\"We\"\"ird\\\"", "public.users"]);
    assert!(!m.all);

    let mut big = Pending::default();
    for i in 0..2_000 {
        big.tables
            .insert(format!("schema_{i}.table_with_a_long_name_{i}"));
    }
    let out = big.payloads("abc");
    assert!(out.len() > 1);
    let mut seen = 0;
    for p in &out {
        assert!(p.len() < 8000, "{}", p.len());
        seen += serde_json::from_str::<Message>(p)
            .expect("json")
            .tables
            .len();
    }
    assert_eq!(seen, 2_000);

    let all = Pending {
        all: true,
        ..Pending::default()
    };
    assert_eq!(all.payloads("x"), [r#"{"l":"@LSN@","i":"x","all":true}"#]);
    let sql = publish_sql("'c'", &all.payloads("x")[0]);
    assert_eq!(
        sql,
        "SELECT pg_notify('c', '{\"l\":\"' || pg_current_wal_insert_lsn()::text || \
         '\",\"i\":\"x\",\"all\":true}'), pg_current_wal_insert_lsn()::text"
    );
}

#[test]
fn pending_collapses_into_a_flush() {
    let chan = Channel::new("c");
    chan.publish(&["a".into()], false, 1);
    assert!(
        chan.take_pending().is_empty(),
        "not started: nothing queued"
    );
    chan.mark_started();
    chan.publish(&["a".into(), "b".into()], false, 2);
    chan.publish(&["a".into()], false, 3);
    let p = chan.take_pending();
    assert_eq!(p.tables.len(), 2);
    assert_eq!(p.seq, 3);
    chan.requeue(p);
    let many: Vec<String> = (0..MAX_PENDING_TABLES).map(|i| format!("t{i}")).collect();
    chan.publish(&many, false, 4);
    let p = chan.take_pending();
    assert!(p.all && p.tables.is_empty());
}

#[test]
fn notification_bodies_parse() {
    let mut message = bytes::BytesMut::new();
    pgtide_wire::encode::notification_response(&mut message, 42, "chan", "{\"i\":\"x\"}")
        .expect("encodable");
    let (_, body) = pgtide_wire::Frames::new(&message)
        .next()
        .expect("one message");
    assert_eq!(
        notification(body),
        Some(("chan".to_string(), "{\"i\":\"x\"}".to_string()))
    );
    assert_eq!(notification(b"\0\0"), None);
    assert_eq!(notification(b"\0\0\0\0chan"), None);
}
