//! `cargo run --example custom_policy`: a resume policy of the application's own, plugged into
//! a session and shown working against the embedded fake server.
//!
//! `FreshAfterDrops` keeps `DefaultPolicy`'s rules but one: after a connection that dropped
//! without notice it does not trust the resumption handle, and starts a fresh server session
//! seeded from the application's context instead (a goAway rotation still resumes). It also
//! retries sooner than the default backoff. It records every plan it makes, and the example
//! prints them with the server's context beside the application's: the same either way.

use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use agent_glue::policy::{
    Backoff, Operation, ResumeContext, ResumePlan, Route, RouteContext, Strategy, Trigger,
};
use agent_glue::{
    DefaultPolicy, Endpoint, LiveSession, ReconnectStrategy, ResumePolicy, SecretString,
    SessionEvent, SessionEvents,
};
use gemini_fake::{FakeConfig, FakeServer, Family};
use gemini_live_examples::{context_lines, server_lines};

/// `DefaultPolicy`, fresh after a drop, with a short backoff; it logs its plans.
struct FreshAfterDrops {
    inner: DefaultPolicy,
    log: Arc<Mutex<Vec<String>>>,
}

impl ResumePolicy for FreshAfterDrops {
    fn plan<'a>(&self, ctx: &ResumeContext<'a>) -> ResumePlan {
        let dropped = matches!(ctx.trigger, Trigger::AbnormalClose { .. });
        // Without a handle, the default rules seed a fresh session from `L`.
        let ctx = if dropped {
            ResumeContext {
                handle: None,
                ..*ctx
            }
        } else {
            *ctx
        };
        let plan = self.inner.plan(&ctx);
        let strategy = match &plan.strategy {
            Strategy::Resume { .. } => "resume",
            Strategy::Fresh => "fresh",
            _ => "give up",
        };
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(format!("{:?} -> {strategy}", ctx.trigger));
        plan
    }

    fn route<'a>(&self, ctx: &RouteContext<'a>, op: &Operation) -> Route {
        self.inner.route(ctx, op)
    }

    fn backoff(&self) -> Backoff {
        let mut backoff = self.inner.backoff();
        backoff.base = Duration::from_millis(50);
        backoff
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("custom_policy failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<bool> {
    let server = FakeServer::start(FakeConfig::new().with_family(Family::Gemini25)).await?;
    let endpoint =
        Endpoint::api_key(SecretString::from("no-key-needed")).with_base_url(&server.url())?;
    let log = Arc::new(Mutex::new(Vec::new()));
    let policy = FreshAfterDrops {
        inner: DefaultPolicy::default(),
        log: Arc::clone(&log),
    };
    let (session, mut events) = LiveSession::builder(endpoint, server.config().setup_model())
        .modality(agent_glue::Modality::Text)
        .policy(Box::new(policy))
        .connect()
        .await?;

    say(&session, &mut events, "Hello!").await?;
    // A planned rotation: the policy resumes.
    server.faults().go_away(Duration::from_secs(50));
    let first = reconnected(&mut events).await?;
    say(&session, &mut events, "Still there?").await?;
    // A drop without notice: the policy starts fresh, seeded from the context.
    server.faults().drop_connections();
    let second = reconnected(&mut events).await?;
    say(&session, &mut events, "And now?").await?;

    println!("\nthe policy's plans:");
    for line in log.lock().unwrap_or_else(PoisonError::into_inner).iter() {
        println!("  {line}");
    }
    println!("after the goAway: {first:?}; after the drop: {second:?}");
    let local = context_lines(&session.chat_ctx());
    let remote = server
        .latest_session()
        .map(|s| server_lines(s.context()))
        .unwrap_or_default();
    println!("\napplication's context | server's context");
    for (l, s) in local.iter().zip(remote.iter()) {
        println!("  {l} | {s}");
    }
    session.close().await?;
    let ok = first == ReconnectStrategy::Resumed
        && second == ReconnectStrategy::Fresh
        && local == remote;
    println!("\n{}", if ok { "as planned" } else { "NOT as planned" });
    Ok(ok)
}

async fn say(session: &LiveSession, events: &mut SessionEvents, text: &str) -> Result<()> {
    println!("user:  {text}");
    session.send_text(text)?;
    let mut answer = String::new();
    loop {
        match events.recv().await.ok_or("the session ended")? {
            SessionEvent::Text(t) => answer.push_str(&t),
            SessionEvent::TurnComplete => break,
            _ => {}
        }
    }
    println!("model: {answer}");
    Ok(())
}

async fn reconnected(events: &mut SessionEvents) -> Result<ReconnectStrategy> {
    loop {
        if let SessionEvent::Reconnected(report) = events.recv().await.ok_or("ended")? {
            return Ok(report.strategy);
        }
    }
}
