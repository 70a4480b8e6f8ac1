use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

use super::*;
use crate::calls::dates::Date;

fn task(action: &str, due: Option<&str>) -> Task {
    let c = Commitment {
        owner: "Lena Hoffmann".into(),
        side: Some(Side::Seller),
        needs_relabel: false,
        action: action.into(),
        due_date: due.map(|d| Date::parse(d).unwrap()),
        due_text: None,
        quote: "I'll send the \"revised\" proposal, by Friday".into(),
        turn: 15,
        start_ms: 1000,
        end_ms: 2000,
        confidence: 0.9,
    };
    Task::from_commitment("call-1", "insight-1", &c)
}

#[test]
fn csv_quotes_fields_with_commas_and_quotes() {
    let csv = to_csv(&[
        task("send the proposal", Some("2026-03-27")),
        task("call back", None),
    ]);
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert_eq!(
        lines[0],
        "id,call_id,owner,side,action,due_date,status,quote"
    );
    assert!(lines[1].ends_with(",Lena Hoffmann,seller,send the proposal,2026-03-27,open,\"I'll send the \"\"revised\"\" proposal, by Friday\""), "{}", lines[1]);
    assert!(
        lines[2].contains(",call back,,open,"),
        "no due date is an empty field"
    );
    assert_eq!(lines.len(), 4, "header, two rows, trailing newline");
}

#[test]
fn ics_has_one_vtodo_per_task_with_its_due_date() {
    let mut done = task("call back", None);
    done.status = "done".into();
    let ics = to_ics(&[
        task("send the proposal; with options", Some("2026-03-27")),
        done,
    ]);
    assert!(ics.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"));
    assert!(ics.ends_with("END:VCALENDAR\r\n"));
    assert_eq!(ics.matches("BEGIN:VTODO").count(), 2);
    assert!(ics.contains("DUE;VALUE=DATE:20260327\r\n"));
    assert_eq!(
        ics.matches("DUE").count(),
        1,
        "a task without a date has no DUE"
    );
    assert!(ics.contains("SUMMARY:Lena Hoffmann: send the proposal\\; with options\r\n"));
    assert!(ics.contains("STATUS:COMPLETED") && ics.contains("STATUS:NEEDS-ACTION"));
    assert!(ics.split("\r\n").all(|l| l.len() <= 75), "lines are folded");
    assert!(ics.contains("DTSTAMP:20") && ics.contains("Z\r\n"));
    assert_eq!(ics_stamp(0), "19700101T000000Z");
    assert_eq!(ics_stamp(86_400_000 + 3_723_000), "19700102T010203Z");
}

/// A local receiver that answers each request with the next status and reports the bodies.
fn receiver(statuses: Vec<u16>) -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/crm/tasks", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for status in statuses {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            let mut line = String::new();
            let mut first = String::new();
            reader.read_line(&mut first).unwrap();
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            // Report before answering, so the client cannot finish before the report exists.
            // The test may have stopped listening (it only checks the outcome).
            let _ = tx.send(format!(
                "{}{}",
                first.trim(),
                String::from_utf8(body).unwrap()
            ));
            let mut stream = reader.into_inner();
            // Two writes: a client must not take the first packet for the whole status line.
            stream.write_all(b"HTTP/1.1 ").unwrap();
            stream.flush().unwrap();
            std::thread::sleep(Duration::from_millis(5));
            write!(stream, "{status} X\r\nContent-Length: 0\r\n\r\n").unwrap();
        }
    });
    (url, rx)
}

fn hook(url: String, attempts: u32) -> Webhook {
    Webhook {
        url,
        attempts,
        backoff: Duration::from_millis(20),
        timeout: Duration::from_secs(5),
    }
}

#[test]
fn webhook_retries_with_backoff_until_the_crm_accepts() {
    let (url, bodies) = receiver(vec![503, 500, 200]);
    let body =
        serde_json::json!({"call_id": "call-1", "tasks": [task("send", Some("2026-03-27"))]});
    let started = std::time::Instant::now();
    assert_eq!(deliver(&hook(url, 5), &body).unwrap(), 3);
    assert!(
        started.elapsed() >= Duration::from_millis(60),
        "waited 20 ms, then 40 ms"
    );
    let got: Vec<String> = bodies.try_iter().collect();
    assert_eq!(got.len(), 3);
    assert!(
        got.iter()
            .all(|b| b.starts_with("POST /crm/tasks HTTP/1.1{"))
    );
    let last: serde_json::Value =
        serde_json::from_str(got[2].trim_start_matches("POST /crm/tasks HTTP/1.1")).unwrap();
    assert_eq!(last["tasks"][0]["due_date"], "2026-03-27");
}

#[test]
fn webhook_gives_up_with_a_clear_error() {
    let (url, _) = receiver(vec![400]);
    let err = deliver(&hook(url, 5), &serde_json::json!({})).unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput(_)),
        "a 400 is not retried: {err}"
    );
    let (url, _) = receiver(vec![503, 503]);
    let err = deliver(&hook(url, 2), &serde_json::json!({})).unwrap_err();
    assert!(err.to_string().contains("failed 2 times"), "{err}");
    let err = deliver(
        &hook("ftp://crm.example/x".into(), 1),
        &serde_json::json!({}),
    )
    .unwrap_err();
    assert!(err.to_string().contains("http://"), "{err}");
}
