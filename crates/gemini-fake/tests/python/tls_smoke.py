"""Drives `gemini-fake --tls` with the official google-genai SDK, unpatched.

Usage: SSL_CERT_FILE=CERT.pem python3 tls_smoke.py https://127.0.0.1:PORT

The SDK is used exactly as an application uses it: an API key, a base URL, the default
WebSocket URL it derives (wss://), and the TLS context it builds itself, which trusts
SSL_CERT_FILE (the fake's self-signed certificate). The model is gemini-3.8-live, so the 3.8
rules hold: AUDIO responses (text comes as output transcription), non-blocking tools by default,
responses scheduled WHEN_IDLE, interactionStatus IDLE on every turnComplete, voiceActivity from
the server's detection, and one socket per session (the resume waits for the first to close).
Prints one line per step; exits non-zero on the first surprise.
"""

import asyncio
import struct
import sys

from google import genai
from google.genai import types

MODEL = "gemini-3.8-live"


async def one_turn(session):
    """What the model said up to turnComplete, its interactionStatus, calls, voice activity."""
    said, calls, activity = "", [], []
    async for message in session.receive():
        if message.tool_call:
            calls.extend(message.tool_call.function_calls)
        if message.voice_activity:
            activity.append(str(message.voice_activity.voice_activity_type.value))
        content = message.server_content
        if content and content.output_transcription and content.output_transcription.text:
            said += content.output_transcription.text
        if content and content.turn_complete:
            status = content.interaction_status.value if content.interaction_status else None
            return said, status, calls, activity
    raise AssertionError("the connection ended inside a turn")


async def next_handle(session):
    async for message in session.receive():
        update = message.session_resumption_update
        if update and update.resumable:
            return update.new_handle
    raise AssertionError("no handle")


async def main(base_url):
    client = genai.Client(
        api_key="fake-key",
        http_options=types.HttpOptions(base_url=base_url, api_version="v1beta"),
    )
    config = types.LiveConnectConfig(
        response_modalities=["AUDIO"],
        output_audio_transcription=types.AudioTranscriptionConfig(),
        input_audio_transcription=types.AudioTranscriptionConfig(),
        session_resumption=types.SessionResumptionConfig(),
        tools=[types.Tool(function_declarations=[types.FunctionDeclaration(name="get_time", description="time")])],
        realtime_input_config=types.RealtimeInputConfig(
            automatic_activity_detection=types.AutomaticActivityDetection(silence_duration_ms=300)
        ),
    )
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        handle = await next_handle(session)
        await session.send_client_content(
            turns=types.Content(role="user", parts=[types.Part(text="hello")]), turn_complete=True
        )
        said, status, _, _ = await one_turn(session)
        assert (said, status) == ("echo: hello", "IDLE"), (said, status)
        print("echo ok")

        await session.send_realtime_input(text="what is get_time now")
        said, status, calls, _ = await one_turn(session)
        assert [c.name for c in calls] == ["get_time"], calls
        assert (said, status) == ("working on get_time", "IDLE"), (said, status)
        print("non-blocking ok")

        await session.send_tool_response(
            function_responses=[
                types.FunctionResponse(
                    id=calls[0].id,
                    name="get_time",
                    response={"now": "noon"},
                    scheduling=types.FunctionResponseScheduling.WHEN_IDLE,
                )
            ]
        )
        said, status, _, _ = await one_turn(session)
        assert (said, status) == ('get_time returned {"now":"noon"}', "IDLE"), (said, status)
        print("tool ok")

        # 1.2 s of speech then 400 ms of silence (300 ms end the turn).
        loud = struct.pack("<800h", *([3000, -3000] * 400))
        quiet = bytes(1600)
        for chunk in [loud] * 24 + [quiet] * 8:
            await session.send_realtime_input(audio=types.Blob(data=chunk, mime_type="audio/pcm;rate=16000"))
        said, status, _, activity = await one_turn(session)
        assert said == "echo: [audio 1.20s]", said
        assert activity == ["ACTIVITY_START", "ACTIVITY_END"], activity
        print("audio ok")
        handle = await next_handle(session)

    # The first socket is closed: the same handle resumes.
    config.session_resumption = types.SessionResumptionConfig(handle=handle)
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        await session.send_realtime_input(text="again")
        said, status, _, _ = await one_turn(session)
        assert (said, status) == ("echo: again", "IDLE"), (said, status)
        print("resume ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
