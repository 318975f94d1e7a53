//! `cargo run --example live -- --wav IN.wav --out OUT.wav`: talks to the real Gemini Live
//! API. Streams IN.wav (16-bit PCM or 32-bit float, any rate, mono or stereo) at real time to
//! `gemini-3.8-live` (or `--model NAME`), prints the transcripts and events as they come, and
//! writes the model's spoken reply to OUT.wav (24 kHz mono PCM16).
//!
//! Credentials come from the environment: `GEMINI_API_KEY` (Developer API), or Vertex AI with
//! `GOOGLE_CLOUD_PROJECT`, `GOOGLE_CLOUD_LOCATION` (default `us-central1`) and
//! `GOOGLE_ACCESS_TOKEN`; without them it says which variable is missing and exits non-zero.
//! `GEMINI_BASE_URL` points it at another server (a proxy, or a `gemini-fake`). `--fake`
//! runs the same against the embedded fake server, with no key.

use std::process::ExitCode;
use std::time::Duration;

use agent_glue::{Endpoint, SecretString};
use gemini_fake::{FakeConfig, FakeServer, Family};
use gemini_live_examples::live_agent::{DEFAULT_MODEL, endpoint_from_env, talk};

struct Args {
    wav: String,
    out: String,
    model: String,
    fake: bool,
}

fn args() -> Result<Args, String> {
    let mut wav = None;
    let mut out = None;
    let mut model = DEFAULT_MODEL.to_owned();
    let mut fake = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--wav" => wav = it.next(),
            "--out" => out = it.next(),
            "--model" => model = it.next().ok_or("--model needs a name")?,
            "--fake" => fake = true,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(Args {
        wav: wav.ok_or("--wav IN.wav is required")?,
        out: out.ok_or("--out OUT.wav is required")?,
        model,
        fake,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}\nusage: live [--fake] [--model NAME] --wav IN.wav --out OUT.wav");
            return ExitCode::from(2);
        }
    };
    let input = match std::fs::read(&args.wav) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("cannot read {}: {e}", args.wav);
            return ExitCode::FAILURE;
        }
    };
    // The fake, when asked for, lives as long as the run.
    let mut fake = None;
    let target = if args.fake {
        match FakeServer::start(FakeConfig::new().with_family(Family::Gemini38)).await {
            Ok(server) => {
                let endpoint = Endpoint::api_key(SecretString::from("fake"))
                    .with_base_url(&server.url())
                    .map(|e| (e, server.config().setup_model()));
                fake = Some(server);
                endpoint.map_err(|e| e.to_string())
            }
            Err(e) => Err(format!("the fake server did not start: {e}")),
        }
    } else {
        endpoint_from_env(|name| std::env::var(name).ok(), &args.model)
    };
    let (endpoint, model) = match target {
        Ok(target) => target,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    println!("connecting to {model}");
    let outcome = talk(endpoint, model, &input, Duration::from_secs(30), |line| {
        println!("{line}");
    })
    .await;
    drop(fake);
    match outcome {
        Ok(outcome) => match std::fs::write(&args.out, &outcome.wav) {
            Ok(()) => {
                println!(
                    "wrote {} ({:.2} s at {} Hz, mono)",
                    args.out, outcome.reply_seconds, outcome.sample_rate
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cannot write {}: {e}", args.out);
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            // The whole chain, each layer once.
            let mut line = e.to_string();
            let mut next = e.source();
            while let Some(cause) = next {
                line.push_str(&format!(": {cause}"));
                next = cause.source();
            }
            eprintln!("{line}");
            ExitCode::FAILURE
        }
    }
}
