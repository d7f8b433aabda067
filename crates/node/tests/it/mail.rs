//! Account mails over SMTP: a small SMTP server on loopback takes what the
//! node sends; one that refuses leaves the mail in the outbox.

use super::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// Serves SMTP sessions on loopback, each mail's DATA sent to `mails`;
/// with `refuse`, every recipient is refused.
async fn smtp_server(refuse: bool) -> (u16, mpsc::Receiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (mails, received) = mpsc::channel(8);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let mails = mails.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 test ESMTP\r\n").await.unwrap();
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(body) = data.as_mut() {
                        if line == "." {
                            let _ = mails.send(data.take().unwrap()).await;
                            write.write_all(b"250 queued\r\n").await.unwrap();
                        } else {
                            body.push_str(&line);
                            body.push('\n');
                        }
                        continue;
                    }
                    let verb = line.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
                    let answer: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 test\r\n",
                        "RCPT" if refuse => b"550 no such user\r\n",
                        "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 ok\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go on\r\n"
                        }
                        "QUIT" => {
                            write.write_all(b"221 bye\r\n").await.unwrap();
                            return;
                        }
                        _ => b"502 not here\r\n",
                    };
                    write.write_all(answer).await.unwrap();
                }
            });
        }
    });
    (port, received)
}

async fn node_mailing_to(port: u16) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    crate::init_node(dir.path());
    let mail = caravan_node::mail::MailConfig {
        smtp_url: Some(format!("smtp://127.0.0.1:{port}")),
        from: Some("Caravan <noreply@example.org>".into()),
    };
    let options = NodeOptions { publish_interval_ms: 5, mail, ..NodeOptions::default() };
    let node = Node::open(dir.path(), options).await.unwrap();
    TestNode { dir, node }
}

fn outbox(t: &TestNode) -> usize {
    std::fs::read_dir(t.dir.path().join(caravan_node::OUTBOX_DIR)).map_or(0, |d| d.count())
}

#[tokio::test]
async fn a_registration_mail_goes_out_over_smtp() {
    use caravan_api::AccountService;
    let (port, mut mails) = smtp_server(false).await;
    let t = node_mailing_to(port).await;
    t.node.accounts().register("ada@example.org", "a long enough phrase").await.unwrap();
    let mail = tokio::time::timeout(std::time::Duration::from_secs(10), mails.recv()).await.unwrap().unwrap();
    assert!(mail.contains("To: ada@example.org") && mail.contains("From: Caravan <noreply@example.org>"), "{mail}");
    assert!(mail.contains("/verify?token="), "{mail}");
    assert_eq!(outbox(&t), 0, "sent, not kept");
}

#[tokio::test]
async fn a_refused_mail_stays_in_the_outbox_and_the_person_is_told() {
    use caravan_api::AccountService;
    let (port, _mails) = smtp_server(true).await;
    let t = node_mailing_to(port).await;
    let refused = t.node.accounts().request_reset("nobody-yet@example.org").await;
    assert!(refused.is_ok(), "no account: no mail, and nothing revealed: {refused:?}");
    t.node.accounts().register("ada@example.org", "a long enough phrase").await.unwrap_err();
    assert_eq!(outbox(&t), 1, "the mail is kept for the operator");
}

#[tokio::test]
async fn a_bad_smtp_url_stops_the_node_at_start() {
    let dir = tempfile::tempdir().unwrap();
    crate::init_node(dir.path());
    let mail = caravan_node::mail::MailConfig { smtp_url: Some("gopher://mail".into()), from: None };
    let error = Node::open(dir.path(), NodeOptions { mail, ..NodeOptions::default() }).await.unwrap_err();
    assert!(error.to_string().contains("mail.smtp_url"), "{error}");
}
