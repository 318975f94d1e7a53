//! Other crates test their session layer with `MockResumePolicy` (feature `mock`).
#![cfg(feature = "mock")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ctx_model::ChatContext;
use resume_policy::{
    MockResumePolicy, ModelCapabilities, ModelFamily, Outbox, ResumeContext, ResumePlan,
    ResumePolicy, Strategy, ToolCalls, Trigger,
};

#[test]
fn mock_policy_is_usable_as_a_trait_object() {
    let mut mock = MockResumePolicy::new();
    mock.expect_plan()
        .withf(|ctx| ctx.trigger == Trigger::FirstConnect && ctx.attempt == 2)
        .times(1)
        .returning(|_| ResumePlan::new(Strategy::Fresh));
    let policy: Box<dyn ResumePolicy> = Box::new(mock);

    let outbox = Outbox::new();
    let context = ChatContext::new();
    let caps = ModelCapabilities::for_family(ModelFamily::Gemini25);
    let calls = ToolCalls::new();
    let ctx = ResumeContext::new(
        Trigger::FirstConnect,
        &outbox,
        &context,
        &context,
        &caps,
        &calls,
    )
    .with_attempt(2);
    assert_eq!(policy.plan(&ctx).strategy, Strategy::Fresh);
}
