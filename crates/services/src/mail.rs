//! The account mails (confirm an address, reset a password) on their way:
//! over SMTP when `[mail] smtp_url` is set, otherwise into the data
//! directory's `outbox/`, one file each, and logged, so a node with no
//! mail server still works and its operator can forward them by hand.

use std::path::PathBuf;

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::accounts::rules::Mail;

/// Mails wait here, one file each, when no SMTP server is configured (or
/// it refused them).
pub const OUTBOX_DIR: &str = "outbox";

/// How mails leave this node, from `[mail]` in `caravan.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// `smtp://host:25`, `smtp://user:password@host:587?tls=required`
    /// (STARTTLS) or `smtps://user:password@host:465`. Unset: the outbox.
    pub smtp_url: Option<String>,
    /// The sender, e.g. `Caravan <noreply@example.org>`.
    pub from: Option<String>,
}

pub struct Mailer {
    smtp: Option<(AsyncSmtpTransport<Tokio1Executor>, Mailbox)>,
    outbox: PathBuf,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("smtp", &self.smtp.is_some()).field("outbox", &self.outbox).finish()
    }
}

/// A `[mail]` setting that cannot work; the node does not start with it.
#[derive(Debug, thiserror::Error)]
pub enum MailConfigError {
    #[error("mail.smtp_url: {0}")]
    SmtpUrl(#[source] lettre::transport::smtp::Error),
    #[error("mail.from {from:?}: {cause}")]
    From { from: String, cause: lettre::address::AddressError },
}

/// A mail that did not leave; where it could be, it is kept in the outbox.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("recipient {to}: {cause}")]
    Recipient { to: String, cause: lettre::address::AddressError },
    #[error("building the message: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("SMTP refused the mail: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("writing the outbox: {0}")]
    Outbox(#[from] std::io::Error),
}

/// The sender when the configuration names none.
const FROM_DEFAULT: &str = "Caravan <noreply@localhost>";

impl Mailer {
    /// Checks the configuration once, at start: a bad URL or sender stops
    /// the node with a clear message rather than losing the first mail.
    pub fn new(config: &MailConfig, outbox: PathBuf) -> Result<Mailer, MailConfigError> {
        let smtp = match &config.smtp_url {
            None => None,
            Some(url) => {
                let transport =
                    AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(MailConfigError::SmtpUrl)?.build();
                let from = config.from.as_deref().unwrap_or(FROM_DEFAULT);
                let from: Mailbox =
                    from.parse().map_err(|cause| MailConfigError::From { from: from.to_owned(), cause })?;
                Some((transport, from))
            }
        };
        Ok(Mailer { smtp, outbox })
    }

    /// Sends `mail`. Over SMTP, a refusal keeps the mail in the outbox
    /// (nothing is lost) and tells the person to try again.
    pub async fn send(&self, mail: &Mail, stamp: i64) -> Result<(), MailError> {
        let Some((transport, from)) = &self.smtp else {
            return self.keep(mail, stamp);
        };
        let sent = match Self::message(mail, from) {
            Ok(message) => transport.send(message).await.map_err(MailError::from),
            Err(error) => Err(error),
        };
        match sent {
            Ok(_) => {
                tracing::info!(to = %mail.to, subject = %mail.subject, "mail sent over SMTP");
                Ok(())
            }
            Err(error) => {
                tracing::error!(to = %mail.to, %error, "SMTP refused a mail; kept in the outbox");
                self.keep(mail, stamp)?;
                Err(error)
            }
        }
    }

    fn message(mail: &Mail, from: &Mailbox) -> Result<Message, MailError> {
        let to: Mailbox = mail.to.parse().map_err(|cause| MailError::Recipient { to: mail.to.clone(), cause })?;
        Message::builder()
            .from(from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(mail.body.clone())
            .map_err(MailError::from)
    }

    /// Writes the mail to the outbox, one file each.
    fn keep(&self, mail: &Mail, stamp: i64) -> Result<(), MailError> {
        let name = format!("{stamp}-{:08x}.eml", rand::random::<u32>());
        let text = format!("To: {}\nSubject: {}\n\n{}", mail.to, mail.subject, mail.body);
        let written =
            std::fs::create_dir_all(&self.outbox).and_then(|()| std::fs::write(self.outbox.join(&name), text));
        if let Err(error) = written {
            tracing::error!(%error, "mail not written to the outbox");
            return Err(error.into());
        }
        tracing::info!(to = %mail.to, subject = %mail.subject, file = %name, "mail written to the outbox");
        Ok(())
    }
}
