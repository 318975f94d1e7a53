//! The `live` example's session: a WAV file streamed at real time to a Live model, the
//! transcripts and events printed as they come, and the model's spoken reply collected as a
//! WAV file. Everything it names comes from `agent_glue`.

use std::sync::Arc;
use std::time::Duration;

use agent_glue::{
    AudioFormat, Endpoint, LiveSession, SecretString, SessionEvent, transport::vertex_model_name,
};

use crate::wav::{Samples, read_wav, write_wav_pcm16};

/// The model the example talks to unless told otherwise.
pub const DEFAULT_MODEL: &str = "gemini-3.8-live";

/// Where to connect, from the environment: Vertex AI when `GOOGLE_CLOUD_PROJECT` is set
/// (with `GOOGLE_CLOUD_LOCATION`, default `us-central1`, and an OAuth access token in
/// `GOOGLE_ACCESS_TOKEN`, e.g. from `gcloud auth print-access-token`), else the Developer API
/// with `GEMINI_API_KEY`. `GEMINI_BASE_URL` re-points either at another server (a proxy, or
/// `gemini-fake`). Returns the endpoint and the `setup.model` for `model`, or which variable
/// is missing.
pub fn endpoint_from_env(
    var: impl Fn(&str) -> Option<String>,
    model: &str,
) -> Result<(Endpoint, String), String> {
    let (endpoint, model) = match var("GOOGLE_CLOUD_PROJECT") {
        Some(project) => {
            let location = var("GOOGLE_CLOUD_LOCATION").unwrap_or_else(|| "us-central1".into());
            let token = var("GOOGLE_ACCESS_TOKEN").ok_or(
                "GOOGLE_ACCESS_TOKEN is not set (Vertex AI, because GOOGLE_CLOUD_PROJECT is): \
                 an OAuth access token, e.g. `gcloud auth print-access-token`",
            )?;
            let endpoint = Endpoint::vertex(location.clone(), SecretString::from(token))
                .map_err(|e| e.to_string())?;
            (endpoint, vertex_model_name(&project, &location, model))
        }
        None => {
            let key = var("GEMINI_API_KEY").ok_or(
                "GEMINI_API_KEY is not set: a Gemini Developer API key (or set \
                 GOOGLE_CLOUD_PROJECT for Vertex AI, or pass --fake)",
            )?;
            (
                Endpoint::api_key(SecretString::from(key)),
                format!("models/{model}"),
            )
        }
    };
    match var("GEMINI_BASE_URL") {
        Some(url) => Ok((
            endpoint.with_base_url(&url).map_err(|e| e.to_string())?,
            model,
        )),
        None => Ok((endpoint, model)),
    }
}

/// What one run gave.
#[derive(Debug)]
pub struct Outcome {
    /// The model's reply as a PCM16 mono WAV file.
    pub wav: Vec<u8>,
    /// Its sample rate (24 kHz from Gemini).
    pub sample_rate: u32,
    /// Seconds of model audio in it.
    pub reply_seconds: f64,
    /// What the model said, as its output transcription.
    pub transcript: String,
}

/// Streams the WAV file `input` (PCM16 or float, any rate, any channels) to `model` at
/// `endpoint` at real time, 20 ms a push, ends the audio stream, and collects the model's
/// audio until its turn completes (or `patience` passes after the file ended). `print` gets
/// one line per event worth showing.
pub async fn talk(
    endpoint: Endpoint,
    model: String,
    input: &[u8],
    patience: Duration,
    mut print: impl FnMut(String),
) -> Result<Outcome, Box<dyn std::error::Error + Send + Sync>> {
    let wav = read_wav(input)?;
    print(format!(
        "input: {:.2} s, {} Hz, {} channel(s)",
        wav.seconds(),
        wav.sample_rate,
        wav.channels
    ));
    let format = AudioFormat::new(wav.sample_rate, wav.channels);
    let (session, mut events) = LiveSession::builder(endpoint, model)
        .instructions("You are a helpful voice assistant. Answer briefly.")
        .connect()
        .await?;
    let session = Arc::new(session);
    // 20 ms of the file per push, at real time.
    let frames = usize::try_from(wav.sample_rate / 50).unwrap_or(1).max(1);
    let step = frames * usize::from(wav.channels);
    let mic = {
        let session = Arc::clone(&session);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            match &wav.samples {
                Samples::I16(samples) => {
                    for chunk in samples.chunks(step) {
                        tick.tick().await;
                        session.push_samples(chunk, format)?;
                    }
                }
                Samples::F32(samples) => {
                    for chunk in samples.chunks(step) {
                        tick.tick().await;
                        session.push_samples(chunk, format)?;
                    }
                }
            }
            // The microphone closed: the server's activity detection ends the turn here.
            session.end_audio_stream()
        })
    };
    let mut mic = Some(mic);
    let mut pcm = Vec::new();
    let mut sample_rate = 24_000;
    let mut transcript = String::new();
    let mut heard = String::new();
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let next = async {
            match deadline {
                Some(at) => tokio::time::timeout_at(at, events.recv()).await.ok(),
                None => Some(events.recv().await),
            }
        };
        tokio::select! {
            result = async {
                match mic.as_mut() {
                    Some(task) => task.await,
                    None => std::future::pending().await,
                }
            }, if mic.is_some() => {
                mic = None;
                result??;
                print("input: sent, audio stream ended".to_owned());
                deadline = Some(tokio::time::Instant::now() + patience);
            }
            event = next => {
                let Some(event) = event else {
                    print("no reply within the wait".to_owned());
                    break;
                };
                let Some(event) = event else {
                    return Err("the session ended before the reply".into());
                };
                match event {
                    SessionEvent::Audio { pcm: chunk, sample_rate: rate } => {
                        sample_rate = rate;
                        pcm.extend_from_slice(&chunk);
                    }
                    SessionEvent::InputTranscript { text, finished } => {
                        heard.push_str(&text);
                        if finished {
                            print(format!("user: {}", heard.trim()));
                            heard.clear();
                        }
                    }
                    SessionEvent::OutputTranscript { text, .. } => {
                        transcript.push_str(&text);
                        print(format!("model: {text}"));
                    }
                    SessionEvent::VoiceActivityStart => print("(user speaking)".to_owned()),
                    SessionEvent::VoiceActivityEnd => print("(user stopped)".to_owned()),
                    SessionEvent::Usage(usage) => print(format!(
                        "usage: prompt {:?}, response {:?} tokens",
                        usage.prompt_tokens, usage.response_tokens
                    )),
                    SessionEvent::Reconnecting { reason } => print(format!("reconnecting: {reason:?}")),
                    SessionEvent::Warning(text) => print(format!("warning: {text}")),
                    SessionEvent::TurnComplete if mic.is_none() && !pcm.is_empty() => {
                        print("model: turn complete".to_owned());
                        break;
                    }
                    SessionEvent::Closed { error } => {
                        return Err(match error {
                            Some(e) => Box::new(e),
                            None => "the session closed".into(),
                        });
                    }
                    _ => {}
                }
            }
        }
    }
    session.close().await?;
    let reply_seconds = pcm.len() as f64 / 2.0 / f64::from(sample_rate.max(1));
    Ok(Outcome {
        wav: write_wav_pcm16(&pcm, sample_rate, 1),
        sample_rate,
        reply_seconds,
        transcript,
    })
}
