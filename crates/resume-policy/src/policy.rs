//! The `ResumePolicy` trait: the policy decides, the session layer executes.

use crate::{
    Backoff, ConnectionId, DivergenceReason, ModelCapabilities, Operation, PlannedSend,
    ResumeContext, ResumePlan, ToolCalls, Trigger,
};

/// What the session knows while a connection is up, for [`ResumePolicy::route`].
#[derive(Debug, Clone, Copy)]
pub struct RouteContext<'a> {
    /// The open connection.
    pub connection: ConnectionId,
    /// The model's capability row.
    pub capabilities: &'a ModelCapabilities,
    /// The tool calls seen and whether the current session knows them.
    pub tool_calls: &'a ToolCalls,
}

/// How to deliver one operation on the open connection.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Route {
    /// Send it now as this message.
    Send(PlannedSend),
    /// Keep it queued: it cannot be sent on this connection, and the next plan (a fresh seed)
    /// will carry it. The session reports the deferral as an event.
    Defer {
        /// Why it cannot be sent now.
        why: DivergenceReason,
    },
    /// Open a new connection (whose `setup` carries it) for this trigger.
    Reconnect(Trigger),
    /// Never send it (a response to a cancelled call).
    Supersede,
    /// It can never be delivered: mark it reported and emit a `Divergence` event.
    Report(DivergenceReason),
}

/// Decides how a session reaches and keeps an exactly-once context across connections.
///
/// Small, object safe, `Send + Sync`; the session holds a `Box<dyn ResumePolicy>` or an
/// `Arc<dyn ResumePolicy>`. Implementations must be pure: the same context gives the same
/// plan. With the `mock` feature, `MockResumePolicy` implements it for tests of the session
/// layer.
///
/// Every end goes through the policy. It decides whether to reconnect, and how, after
/// anything that can be retried (and gives up when it will not), and it is asked for a plan
/// too when the session layer ends the session for a failure no retry fixes
/// ([`Trigger::Fatal`]: a refused key, a spent quota, a rejected `setup`, a first connection
/// that cannot succeed). That plan only says what is not delivered (give up, reporting the
/// live operations); the session ends whatever strategy it names.
///
/// A custom policy can wrap a shipped one and change one decision, here: never resume from a
/// stale handle, start fresh instead.
///
/// ```
/// use resume_policy::{
///     DefaultPolicy, Operation, ResumeContext, ResumePlan, ResumePolicy, Route, RouteContext,
/// };
///
/// struct FreshOverStale(DefaultPolicy);
///
/// impl ResumePolicy for FreshOverStale {
///     fn plan(&self, ctx: &ResumeContext<'_>) -> ResumePlan {
///         let stale = ctx.handle.is_some_and(|h| h.is_stale());
///         let ctx = if stale { ctx.with_handle(None) } else { *ctx };
///         self.0.plan(&ctx)
///     }
///
///     fn route(&self, ctx: &RouteContext<'_>, op: &Operation) -> Route {
///         self.0.route(ctx, op)
///     }
/// }
///
/// let policy: Box<dyn ResumePolicy> = Box::new(FreshOverStale(DefaultPolicy::default()));
/// # let _ = policy;
/// ```
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait ResumePolicy: Send + Sync {
    /// The plan for the connection attempt described by `ctx`.
    fn plan<'a>(&self, ctx: &ResumeContext<'a>) -> ResumePlan;

    /// How to deliver `op` (just queued, or deferred before) on the open connection.
    fn route<'a>(&self, ctx: &RouteContext<'a>, op: &Operation) -> Route;

    /// The backoff the policy plans with; the session layer uses its `stable_after` to tell
    /// a flapping connection from a stable one. Default: [`Backoff::default`].
    fn backoff(&self) -> Backoff {
        Backoff::default()
    }
}

/// Object safety, pinned at compile time.
const _: fn(Box<dyn ResumePolicy>) = |_| {};
