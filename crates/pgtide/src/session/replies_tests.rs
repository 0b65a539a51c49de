//! Unit tests of the reply queue (replies.rs).

use super::*;

#[test]
fn error_before_the_sync_arrived_discards_until_it() {
    let mut q = ReplyQueue::default();
    let mut forgotten = Vec::new();
    q.expect(Completion::Bind);
    assert_eq!(q.on_backend_message(b'E', &mut forgotten), Verdict::Forward);
    assert!(
        q.is_discarding(),
        "the client's Execute and Sync are still to come"
    );
    q.sync();
    assert!(!q.is_discarding());
    assert_eq!(q.on_backend_message(b'Z', &mut forgotten), Verdict::Forward);
    assert!(q.is_empty(), "nothing left owed");
    // A simple query's error: its ReadyForQuery is already owed, nothing is discarded.
    q.expect(Completion::Ready);
    q.on_backend_message(b'E', &mut forgotten);
    assert!(!q.is_discarding());
}

#[test]
fn synthetic_reply_waits_for_earlier_replies() {
    let mut q = ReplyQueue::default();
    let mut forgotten = Vec::new();
    q.expect(Completion::Bind);
    q.synthetic(Bytes::from_static(b"1"));
    q.expect(Completion::Ready);
    let mut due = Vec::new();
    q.take_due_synthetic(&mut due);
    assert!(due.is_empty());
    assert_eq!(q.on_backend_message(b'2', &mut forgotten), Verdict::Forward);
    q.take_due_synthetic(&mut due);
    assert_eq!(due.len(), 1);
    assert_eq!(q.on_backend_message(b'Z', &mut forgotten), Verdict::Forward);
    assert!(q.is_empty());
}

#[test]
fn synthetic_bytes_follow_the_queue() {
    let mut q = ReplyQueue::default();
    let mut forgotten = Vec::new();
    let mut due = Vec::new();
    q.synthetic(Bytes::from_static(b"abc"));
    assert!(!q.synthetic_waits_on_backend(), "due now");
    q.expect(Completion::Execute);
    q.synthetic(Bytes::from_static(b"de"));
    q.expect(Completion::Ready);
    q.synthetic(Bytes::from_static(b"f"));
    assert_eq!(q.synthetic_bytes(), 6);
    q.take_due_synthetic(&mut due);
    assert_eq!((due.len(), q.synthetic_bytes()), (1, 3));
    assert!(q.synthetic_waits_on_backend());
    // An error drops what the backend will never answer, and the replies queued with it.
    q.on_backend_message(b'E', &mut forgotten);
    assert_eq!(q.synthetic_bytes(), 1);
    q.on_backend_message(b'Z', &mut forgotten);
    q.take_due_synthetic(&mut due);
    assert_eq!((due.len(), q.synthetic_bytes()), (2, 0));
    q.synthetic(Bytes::from_static(b"g"));
    q.clear();
    assert_eq!(q.synthetic_bytes(), 0);
}

#[test]
fn injected_parse_reply_is_swallowed() {
    let mut q = ReplyQueue::default();
    let mut forgotten = Vec::new();
    q.expect_swallowed(Completion::Parse, Some("s".into()));
    q.expect(Completion::Bind);
    assert_eq!(q.on_backend_message(b'1', &mut forgotten), Verdict::Swallow);
    assert_eq!(q.on_backend_message(b'2', &mut forgotten), Verdict::Forward);
}

#[test]
fn error_drops_everything_up_to_sync() {
    let mut q = ReplyQueue::default();
    let mut forgotten = Vec::new();
    q.expect_parse("a".into());
    q.expect_swallowed(Completion::Parse, Some("b".into()));
    q.synthetic(Bytes::from_static(b"x"));
    q.expect(Completion::Execute);
    q.expect(Completion::Ready);
    q.expect(Completion::Bind);
    assert_eq!(q.on_backend_message(b'E', &mut forgotten), Verdict::Forward);
    assert_eq!(forgotten, vec!["a".to_string(), "b".to_string()]);
    assert_eq!(q.len(), 2);
    assert_eq!(q.on_backend_message(b'Z', &mut forgotten), Verdict::Forward);
    assert_eq!(q.on_backend_message(b'2', &mut forgotten), Verdict::Forward);
    assert!(q.is_empty());
}

#[test]
fn syncs_during_extended_copy_in_are_owed_nothing() {
    let mut q = ReplyQueue::default();
    let mut forgotten = Vec::new();
    q.expect(Completion::Execute);
    q.sync(); // sent right behind Execute, ignored by the backend in copy-in mode
    assert_eq!(q.on_backend_message(b'G', &mut forgotten), Verdict::Forward);
    q.sync(); // also ignored
    q.copy_end();
    q.sync(); // this one ends the batch
    assert_eq!(q.on_backend_message(b'C', &mut forgotten), Verdict::Forward);
    assert_eq!(q.len(), 1);
    q.on_backend_message(b'Z', &mut forgotten);
    assert!(q.is_empty());
}

#[test]
fn copy_data_pipelined_before_copy_in_response() {
    let mut q = ReplyQueue::default();
    let mut forgotten = Vec::new();
    q.expect(Completion::Execute);
    q.sync();
    q.copy_end();
    q.sync();
    q.on_backend_message(b'G', &mut forgotten);
    q.on_backend_message(b'C', &mut forgotten);
    assert_eq!(q.len(), 1);
    q.on_backend_message(b'Z', &mut forgotten);
    assert!(q.is_empty());
}

#[test]
fn simple_query_copy_leaves_nothing_behind() {
    let mut q = ReplyQueue::default();
    let mut forgotten = Vec::new();
    let mut due = Vec::new();
    q.expect(Completion::Ready);
    q.on_backend_message(b'G', &mut forgotten);
    q.copy_end();
    q.on_backend_message(b'C', &mut forgotten);
    q.on_backend_message(b'Z', &mut forgotten);
    q.take_due_synthetic(&mut due);
    assert!(q.is_empty() && due.is_empty());
}

#[test]
fn pgtide_own_query_is_swallowed_whole() {
    let mut q = ReplyQueue::default();
    let mut forgotten = Vec::new();
    q.expect_swallowed_query();
    q.expect(Completion::Ready);
    for t in [b'C', b'S', b'E', b'Z'] {
        assert_eq!(q.on_backend_message(t, &mut forgotten), Verdict::Swallow);
    }
    assert_eq!(q.len(), 1);
    assert_eq!(q.on_backend_message(b'C', &mut forgotten), Verdict::Forward);
}

#[test]
fn rows_inside_simple_query_do_not_complete_it() {
    let mut q = ReplyQueue::default();
    let mut forgotten = Vec::new();
    q.expect(Completion::Ready);
    for t in [b'T', b'D', b'C', b'I', b'n'] {
        assert_eq!(q.on_backend_message(t, &mut forgotten), Verdict::Forward);
        assert_eq!(q.len(), 1);
    }
    q.on_backend_message(b'Z', &mut forgotten);
    assert!(q.is_empty());
}
