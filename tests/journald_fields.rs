//! The journald driver as conmon 2.2 has it: no journal is no error (the
//! container runs, its records are counted as lost, a journal that comes
//! later gets the records from then on), the fields of each record
//! (SYSLOG_IDENTIFIER from the tag, else the name, else the short id;
//! `--log-label` fields; a `<N>` priority prefix), and
//! `--no-container-partial-message`.
//!
//! Starting without a journal runs against /usr/bin/conmon too (this host
//! has no /run/systemd/journal/socket: conmon starts and carries on); the
//! fields conmon 2.2 added are held to its documented behaviour, against a
//! stand-in journal socket (`$SHIMLET_JOURNAL_SOCKET`).

mod common;

use common::*;

// Proves a missing journal is not fatal, as with conmon: with `-l
// journald -l k8s-file:LOG` and no journal socket, conmon and shimlet
// both start the container, log it to the file and record its exit;
// shimlet warns on stderr that there is no journal, and (on its own
// command line) counts the unsent bytes as lost in the exit record.
#[test]
fn journald_without_journal_starts_like_conmon() {
    let fx = Fixture::new("j-none");
    let missing = fx.tmp.join("no-journal.sock");
    for shim in Shim::BOTH {
        let c = fx.bundle(&["sh", "-c", "echo to-both; exit 4"]);
        let l = conmon_logged(&fx, &c, shim).opt("-l", "journald").env("SHIMLET_JOURNAL_SOCKET", &missing);
        let r = fx.launch_ok(&c, l);
        fx.start(&c);
        assert_eq!(c.wait_exit_file(), "4", "[{shim}] the exit file");
        c.wait_no_shim(None);
        assert_eq!(c.log().stream(Stream::Stdout), b"to-both\n", "[{shim}] the k8s-file log");
        eprintln!("[{shim}] stderr {:?}", r.stderr_str());
        if shim == Shim::Shimlet {
            assert!(r.stderr_str().contains("no journal at"), "a warning: {:?}", r.stderr_str());
        }
    }
    let c = fx.bundle(&["sh", "-c", "echo 12345"]);
    let l = fx.launcher(&c).opt("--log", "journald").env("SHIMLET_JOURNAL_SOCKET", &missing);
    fx.launch_ok(&c, l);
    fx.start(&c);
    let st = c.wait_status();
    assert_exited(&st, 0, 0);
    assert_eq!(st.num("lost"), 5, "the line not sent: {}", st.raw);
}

// Proves a journal that appears after the start gets the records from
// then on: the first line goes nowhere (counted), the second reaches the
// socket bound meanwhile.
#[test]
fn journald_that_comes_later_gets_the_rest() {
    let fx = Fixture::new("j-later");
    let sock = fx.tmp.join("journal.sock");
    let c = fx.bundle(&["sh", "-c", &format!("echo early; {}; echo late", wait_file_sh("go"))]);
    let l = fx.launcher(&c).opt("--log", "journald").env("SHIMLET_JOURNAL_SOCKET", &sock);
    let r = fx.launch_ok(&c, l.sync(Sync::Fd));
    let pid = r.sync_pid() as i32;
    fx.start(&c);
    c.wait_log_contains(Stream::Stdout, "early\n");
    let j = JournalSink::bind(&sock);
    touch_in_container(pid, "go");
    let got = j.until("late");
    assert_eq!(got.len(), 1, "only the late line: {got:?}");
    let st = c.wait_status();
    assert_eq!(st.num("lost"), 5, "the early line: {}", st.raw);
}

// Proves conmon 2.2's fields: with `-n NAME --log-tag TAG` the tag is the
// SYSLOG_IDENTIFIER and CONTAINER_TAG, the name CONTAINER_NAME; without
// the tag the name is the identifier, without both the 12-character id;
// each `--log-label K=V` is a field; `<3>text` is PRIORITY 3 with `text`
// as the message, `<9>` is no prefix, stderr lines are 3 and stdout 6; a
// piece without its newline is CONTAINER_PARTIAL_MESSAGE=true.
#[test]
fn fields_labels_and_priorities() {
    let fx = Fixture::new("j-fields");
    let script = "echo plain; echo '<3>prio three'; echo '<9>not a prio'; echo '<5>err five' >&2; \
                  echo on-err >&2; printf piece";
    for (tag, name, ident) in [(Some("TAG"), Some("NAME"), "TAG"), (None, Some("NAME"), "NAME"), (None, None, "")] {
        let sock = fx.tmp.join(format!("journal-{}.sock", next_n()));
        let j = JournalSink::bind(&sock);
        let c = fx.bundle(&["sh", "-c", script]);
        let mut l = conmon_line(&fx, &c, Shim::Shimlet)
            .opt("-l", "journald")
            .opt("--log-label", "A=1")
            .opt("--log-label", "B_2=two words")
            .env("SHIMLET_JOURNAL_SOCKET", &sock);
        if let Some(t) = tag {
            l = l.opt("--log-tag", t);
        }
        if let Some(n) = name {
            l = l.opt("-n", n);
        }
        fx.launch_ok(&c, l);
        fx.start(&c);
        let got = j.until_all(&["piece", "on-err"]);
        assert_eq!(c.wait_exit_file(), "0");
        let by = |m: &str| {
            got.iter()
                .find(|e| e.get("MESSAGE") == Some(m.as_bytes()))
                .unwrap_or_else(|| panic!("no record {m:?} in {got:?}"))
                .clone()
        };
        let plain = by("plain");
        let ident = if ident.is_empty() { c.id[..12].to_string() } else { ident.to_string() };
        assert_eq!(plain.text("SYSLOG_IDENTIFIER").as_deref(), Some(ident.as_str()), "tag {tag:?} name {name:?}");
        assert_eq!(plain.text("CONTAINER_TAG").as_deref(), tag);
        assert_eq!(plain.text("CONTAINER_NAME").as_deref(), name);
        assert_eq!(plain.text("CONTAINER_ID_FULL").as_deref(), Some(c.id.as_str()));
        assert_eq!(plain.text("CONTAINER_ID").as_deref(), Some(&c.id[..12]));
        assert_eq!(plain.text("A").as_deref(), Some("1"));
        assert_eq!(plain.text("B_2").as_deref(), Some("two words"));
        assert_eq!(plain.text("PRIORITY").as_deref(), Some("6"));
        assert_eq!(by("prio three").text("PRIORITY").as_deref(), Some("3"));
        assert_eq!(by("<9>not a prio").text("PRIORITY").as_deref(), Some("6"));
        assert_eq!(by("err five").text("PRIORITY").as_deref(), Some("5"));
        assert_eq!(by("on-err").text("PRIORITY").as_deref(), Some("3"));
        assert_eq!(by("piece").text("CONTAINER_PARTIAL_MESSAGE").as_deref(), Some("true"));
        assert!(plain.get("CONTAINER_PARTIAL_MESSAGE").is_none());
        c.wait_no_shim(None);
    }
}

// Proves --no-container-partial-message: the piece without its newline
// carries no CONTAINER_PARTIAL_MESSAGE (conmon 2.2's option).
#[test]
fn no_partial_message_flag() {
    let fx = Fixture::new("j-nopart");
    let sock = fx.tmp.join("journal.sock");
    let j = JournalSink::bind(&sock);
    let c = fx.bundle(&["sh", "-c", "echo whole; printf piece"]);
    let l = conmon_line(&fx, &c, Shim::Shimlet)
        .opt("-l", "journald")
        .arg("--no-container-partial-message")
        .env("SHIMLET_JOURNAL_SOCKET", &sock);
    let r = fx.launch_ok(&c, l);
    assert!(!r.stderr_str().contains("no effect"), "with journald there is no warning: {:?}", r.stderr_str());
    fx.start(&c);
    let got = j.until("piece");
    assert!(got.iter().all(|e| e.get("CONTAINER_PARTIAL_MESSAGE").is_none()), "{got:?}");
    assert_eq!(c.wait_exit_file(), "0");
}
