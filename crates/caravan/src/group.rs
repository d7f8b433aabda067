//! `caravan group`: run an owner as a replica group of nodes.
//!
//! Every node starts as a group of one. Another machine joins with a
//! fresh data directory and its own peer and member ids, and needs the
//! owner's key (all members sign as the owner): with an invitation
//! (`invite` asks a member for one; `join --invite` redeems it over a peer
//! connection for the key and the members, and that member adds the
//! machine), or with a copy of `node.key` and an admin token (`join --via`
//! checks it is the same owner and asks the group to add it). Either way
//! `join` readies the directory to take the group's log and runs the node.
//! `status` and `leave` talk to a running member's API.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use caravan_api::dto::{GroupMemberInput, GroupView, NodeStatus};
use serde::de::DeserializeOwned;

use crate::cli;

/// How long `join` waits for its own node to answer before asking to be added.
const LOCAL_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Adding a member waits until it has caught up with the group's log.
const ADD_TIMEOUT: Duration = Duration::from_secs(120);

pub fn run(command: cli::GroupCommand) -> anyhow::Result<()> {
    match command {
        cli::GroupCommand::Init(args) => init(&args.data_dir),
        cli::GroupCommand::Join(args) => join(args),
        cli::GroupCommand::Status(args) => crate::runtime()?.block_on(async {
            let client = crate::load::client(args.token.as_deref())?;
            let group: GroupView = get(&client, &format!("{}/api/v1/group", base(&args.api))).await?;
            print!("{}", describe(&group));
            Ok(())
        }),
        cli::GroupCommand::Leave(args) => leave(args),
        cli::GroupCommand::Invite(args) => invite(args),
    }
}

fn invite(args: cli::GroupInvite) -> anyhow::Result<()> {
    let api = base(&args.api.api).to_owned();
    crate::runtime()?.block_on(async move {
        let client = crate::load::client(args.api.token.as_deref())?;
        let input = caravan_api::dto::InvitationInput { ttl_seconds: Some(args.ttl_seconds) };
        let request = client.post(format!("{api}/api/v1/group/invitations")).json(&input);
        let invitation: caravan_api::dto::InvitationView =
            answer(request.send().await.with_context(|| format!("reaching {api}"))?).await?;
        println!("{}", invitation.token);
        eprintln!(
            "a one-time invitation, valid until {}: on the new machine run\n  caravan group join --invite <the token> \
             --data-dir <a fresh directory> --p2p /ip4/<its address>/tcp/<port>\nkeep it secret: it gives the \
             owner's key to the first machine that uses it",
            invitation.expires_at
        );
        Ok(())
    })
}

fn init(data_dir: &Path) -> anyhow::Result<()> {
    let done = caravan_node::init(data_dir).with_context(|| format!("initializing {}", data_dir.display()))?;
    let me = caravan_node::identity(data_dir)?;
    let verb = if done.created { "created" } else { "already initialized" };
    println!("{}: {verb}", data_dir.display());
    println!("origin (public key): {}", me.origin);
    println!("peer id:             {}", me.peer_id);
    println!("member id:           {}", me.member_id);
    println!(
        "a replica group of one once it runs (`caravan node run --data-dir {0}`); to add a machine, print an \
         invitation with `caravan group invite` and run `caravan group join --invite <it> --p2p <its address>` \
         there (or copy {0}/{1} to it and use `--via http://<this node> --key <the copy>`)",
        data_dir.display(),
        caravan_node::identity::KEY_FILE,
    );
    Ok(())
}

/// A joining member's settings: where it serves, and where it listens for
/// its group (an address the group can dial).
fn member_config(data_dir: &Path, args: &cli::GroupJoin) -> anyhow::Result<caravan_node::Config> {
    let mut config = caravan_node::Config::load(data_dir).map_err(anyhow::Error::msg)?;
    if let Some(http) = args.http {
        config.http = http;
    }
    config.p2p.listen_also(&args.p2p);
    ensure!(
        !config.p2p.listen.is_empty(),
        "a member must listen for its group: give --p2p /ip4/<address>/tcp/<port> (or p2p.listen in caravan.toml)"
    );
    if let Some(vague) = config.p2p.listen.iter().find(|a| a.contains("/0.0.0.0/") || a.ends_with("/tcp/0")) {
        bail!("the group dials members where they listen: {vague} is not an address it can dial");
    }
    Ok(config)
}

/// Joins with an invitation: redeems it over a peer connection for the
/// owner key and the members, then runs the node, which the member that
/// issued the invitation adds to the group.
fn join_invited(args: cli::GroupJoin, token: &str) -> anyhow::Result<()> {
    use caravan_node::invitation::{redeem_invitation, Invitation};
    let data_dir = args.data_dir.clone();
    let invitation = Invitation::parse(token).map_err(anyhow::Error::msg)?;
    ensure!(
        invitation.expires_at > crate::now(),
        "the invitation expired at {}: ask for a new one with `caravan group invite`",
        caravan_api::dto::rfc3339(invitation.expires_at)
    );
    ensure!(
        !data_dir.join(caravan_node::identity::KEY_FILE).exists(),
        "{} already holds an owner key: an invitation is for a fresh data directory",
        data_dir.display()
    );
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let mut config = member_config(&data_dir, &args)?;
    let member_id = caravan_node::member_id_of(&data_dir)?;
    crate::runtime()?.block_on(async move {
        let (seed, members) = redeem_invitation(&data_dir, &invitation, member_id, config.p2p.listen.clone())
            .await
            .map_err(anyhow::Error::msg)?;
        caravan_node::NodeKey::install(&data_dir, seed).context("keeping the owner key")?;
        caravan_node::init(&data_dir).with_context(|| format!("initializing {}", data_dir.display()))?;
        let peers: Vec<String> = members.iter().map(|m| m.peer_id.clone()).collect();
        caravan_node::prepare_join(&data_dir, &peers)?;
        config.p2p.dial_also(members.iter().flat_map(|m| &m.addrs));
        let shutdown = crate::stop::requested();
        let listener = keep_and_bind(&data_dir, &config).await?;
        let local = listener.local_addr()?;
        println!(
            "caravan node: http://{local} (data in {}), member {member_id}: the group adds it once it has caught up \
             (`caravan group status` on any member shows it); Ctrl-C stops it, `caravan node run --data-dir {}` \
             starts it again",
            data_dir.display(),
            data_dir.display()
        );
        caravan_node::run(&data_dir, &config, listener, shutdown).await.context("running the node")
    })
}

fn join(args: cli::GroupJoin) -> anyhow::Result<()> {
    if let Some(token) = args.invite.clone() {
        return join_invited(args, &token);
    }
    let data_dir = args.data_dir.clone();
    install_key(&data_dir, args.key.as_deref())?;
    caravan_node::init(&data_dir).with_context(|| format!("initializing {}", data_dir.display()))?;
    let me = caravan_node::identity(&data_dir)?;
    let mut config = member_config(&data_dir, &args)?;
    let via = base(args.via.as_deref().expect("clap requires --via without --invite")).to_owned();
    crate::runtime()?.block_on(async move {
        let client = crate::load::client(args.token.as_deref())?;
        let theirs: NodeStatus = get(&client, &format!("{via}/api/v1/status")).await?;
        ensure!(
            theirs.origin == me.origin.to_string(),
            "{via} runs owner {} but {} holds owner {}'s key: copy that node's {}",
            theirs.origin,
            data_dir.display(),
            me.origin,
            caravan_node::identity::KEY_FILE
        );
        let group: GroupView = get(&client, &format!("{via}/api/v1/group")).await?;
        let member = group.members.iter().any(|m| m.id == me.member_id);
        if !member {
            let peers: Vec<String> = group.members.iter().map(|m| m.peer_id.clone()).collect();
            caravan_node::prepare_join(&data_dir, &peers)?;
        }
        // Replicate the catalog from the group's members too.
        config.p2p.dial_also(group.members.iter().flat_map(|m| &m.addrs));
        let listener = keep_and_bind(&data_dir, &config).await?;
        let local = listener.local_addr()?;
        println!("caravan node: http://{local} (data in {}), joining the group of {via}", data_dir.display());
        let (give_up, gave_up) = tokio::sync::oneshot::channel::<()>();
        let stop = crate::stop::requested();
        let shutdown = async move {
            tokio::select! {
                _ = stop => {}
                _ = gave_up => {}
            }
        };
        let node = {
            let (data_dir, config) = (data_dir.clone(), config.clone());
            tokio::spawn(async move { caravan_node::run(&data_dir, &config, listener, shutdown).await })
        };
        if !member {
            let input = GroupMemberInput { member_id: me.member_id, peer_id: me.peer_id, addrs: config.p2p.listen };
            match ask_to_join(&client, local, &via, &input).await {
                Ok(group) => {
                    print!("{}", describe(&group));
                    println!(
                        "member {} joined; this node keeps running (Ctrl-C stops it; `caravan node run --data-dir {}` \
                         starts it again)",
                        input.member_id,
                        data_dir.display()
                    );
                }
                Err(error) => {
                    let _ = give_up.send(());
                    let _ = node.await;
                    return Err(error.context("the group did not add this node; its data directory can try again"));
                }
            }
        }
        node.await.context("the node task failed")?.context("running the node")
    })
}

/// Keeps a joining member's settings, so that `caravan node run --data-dir
/// DIR` starts it where the group dials it, and binds its HTTP address.
async fn keep_and_bind(data_dir: &Path, config: &caravan_node::Config) -> anyhow::Result<tokio::net::TcpListener> {
    config
        .save(data_dir)
        .with_context(|| format!("saving {}", data_dir.join(caravan_node::config::CONFIG_FILE).display()))?;
    tokio::net::TcpListener::bind(config.http).await.with_context(|| format!("binding {}", config.http))
}

/// Puts the owner's key into a new member's data directory (mode 0600).
fn install_key(data_dir: &Path, key: Option<&Path>) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let target = data_dir.join(caravan_node::identity::KEY_FILE);
    match key {
        _ if target.exists() => Ok(()),
        None => bail!(
            "{} has no {}: every member signs as the owner, so give --key with a copy of the group's",
            data_dir.display(),
            caravan_node::identity::KEY_FILE
        ),
        Some(key) => {
            std::fs::create_dir_all(data_dir)?;
            std::fs::copy(key, &target).with_context(|| format!("copying {}", key.display()))?;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600))?;
            Ok(())
        }
    }
}

/// Waits for the local node to answer, then asks the group to add it.
async fn ask_to_join(
    client: &reqwest::Client,
    local: SocketAddr,
    via: &str,
    input: &GroupMemberInput,
) -> anyhow::Result<GroupView> {
    let deadline = Instant::now() + LOCAL_READY_TIMEOUT;
    while get::<NodeStatus>(client, &format!("http://{local}/api/v1/status")).await.is_err() {
        ensure!(Instant::now() < deadline, "this node did not start within {LOCAL_READY_TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let request = client.post(format!("{via}/api/v1/group/members")).json(input).timeout(ADD_TIMEOUT);
    answer(request.send().await.with_context(|| format!("asking {via} to add this node"))?).await
}

fn leave(args: cli::GroupLeave) -> anyhow::Result<()> {
    let api = base(&args.api.api).to_owned();
    crate::runtime()?.block_on(async move {
        let client = crate::load::client(args.api.token.as_deref())?;
        let group: GroupView = get(&client, &format!("{api}/api/v1/group")).await?;
        let id = args.member.unwrap_or(group.member_id);
        let request = client.delete(format!("{api}/api/v1/group/members/{id}"));
        let after: GroupView = answer(request.send().await.with_context(|| format!("reaching {api}"))?).await?;
        print!("{}", describe(&after));
        println!("member {id} left its group");
        if id == group.member_id {
            println!(
                "stop the node at {api}: it no longer belongs to the group, and its data directory cannot join \
                 again (member ids are never reused; a fresh directory can)"
            );
        }
        Ok(())
    })
}

/// `url` without a trailing slash.
fn base(url: &str) -> &str {
    url.trim_end_matches('/')
}

pub(crate) async fn get<T: DeserializeOwned>(client: &reqwest::Client, url: &str) -> anyhow::Result<T> {
    let response = client.get(url).timeout(Duration::from_secs(10)).send().await;
    answer(response.with_context(|| format!("reaching {url}"))?).await
}

/// The body of a successful answer, or the API's error message.
pub(crate) async fn answer<T: DeserializeOwned>(response: reqwest::Response) -> anyhow::Result<T> {
    let (status, url) = (response.status(), response.url().clone());
    if status.is_success() {
        return response.json().await.with_context(|| format!("reading the answer of {url}"));
    }
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    match body["message"].as_str() {
        Some(message) => bail!("{url}: {status}: {message}"),
        None => bail!("{url}: {status}"),
    }
}

/// A member's view of its group, for people.
fn describe(group: &GroupView) -> String {
    use std::fmt::Write;
    let dash = |index: Option<u64>| index.map_or("-".to_owned(), |i| i.to_string());
    let mut out = String::new();
    let leader = group.leader.map_or("none".to_owned(), |id| id.to_string());
    let line = format!(
        "member {} ({}), term {}, leader {leader}\nlog {}, applied {}, snapshot {}; heartbeat {} ms, election \
         timeout {} ms\n",
        group.member_id,
        group.role,
        group.term,
        dash(group.last_log_index),
        group.applied_index,
        dash(group.snapshot_index),
        group.heartbeat_ms,
        group.election_timeout_ms,
    );
    out.push_str(&line);
    writeln!(out, "{:>20} {:<8} {:>8}  {:<52} addrs", "id", "role", "matched", "peer").expect("writing to a String");
    for member in &group.members {
        let role = match (Some(member.id) == group.leader, member.voter) {
            (true, _) => "leader",
            (false, true) => "voter",
            (false, false) => "learner",
        };
        let addrs = member.addrs.join(" ");
        let matched = dash(member.matched_index);
        writeln!(out, "{:>20} {role:<8} {matched:>8}  {:<52} {addrs}", member.id, member.peer_id)
            .expect("writing to a String");
    }
    out
}
