"""Drives the fake server with the official google-genai SDK.

Usage: python3 smoke.py BASE_URL   (for example ws://127.0.0.1:PORT)

It talks to a 2.5 model in TEXT (3.8 refuses TEXT; `tls_smoke.py` covers 3.8 over wss://).

Exits 0 when every step behaves as the fake's scripted model promises; prints what it saw.
"""

import asyncio
import struct
import sys

from google import genai
from google.genai import _api_client
from google.genai import types

MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"


async def one_turn(session):
    """Text of the model's answer up to turnComplete, and the last resumable handle seen."""
    text, handle, calls = "", None, []
    async for message in session.receive():
        if message.session_resumption_update and message.session_resumption_update.resumable:
            handle = message.session_resumption_update.new_handle
        if message.tool_call:
            calls.extend(message.tool_call.function_calls)
            break
        if message.text:
            text += message.text
        if message.server_content and message.server_content.turn_complete:
            break
    return text, handle, calls


async def next_handle(session):
    async for message in session.receive():
        update = message.session_resumption_update
        if update and update.resumable:
            return update.new_handle
    raise AssertionError("no handle")


async def main(base_url):
    # With an API key the SDK always rewrites the WebSocket scheme to wss://, and the fake
    # serves plain ws://: keep the base URL as given and drop the TLS context. Every frame is the
    # SDK's own.
    _api_client.BaseApiClient._websocket_base_url = lambda self, http_options=None: base_url
    client = genai.Client(
        api_key="fake-key",
        http_options=types.HttpOptions(base_url=base_url, api_version="v1beta"),
    )
    client._api_client._websocket_ssl_ctx = {}  # no TLS context for a ws:// URL
    config = types.LiveConnectConfig(
        response_modalities=["TEXT"],
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
        text, handle, _ = await one_turn(session)
        assert text == "echo: hello", text
        print("echo ok")

        await session.send_realtime_input(text="what is get_time now")
        _, _, calls = await one_turn(session)
        assert [c.name for c in calls] == ["get_time"], calls
        await session.send_tool_response(
            function_responses=[types.FunctionResponse(id=calls[0].id, name="get_time", response={"now": "noon"})]
        )
        text, handle, _ = await one_turn(session)
        assert text == 'get_time returned {"now":"noon"}', text
        print("tool ok")

        # 1.2 s of speech then silence, as URL-safe base64 in snake_case frames.
        loud = struct.pack("<800h", *([3000, -3000] * 400))
        quiet = bytes(1600)
        for chunk in [loud] * 24 + [quiet] * 8:
            await session.send_realtime_input(audio=types.Blob(data=chunk, mime_type="audio/pcm;rate=16000"))
        text, handle, _ = await one_turn(session)
        assert text == "echo: [audio 1.20s]", text
        print("audio ok")
        if handle is None:
            handle = await next_handle(session)

    config.session_resumption = types.SessionResumptionConfig(handle=handle)
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        await session.send_realtime_input(text="again")
        text, _, _ = await one_turn(session)
        assert text == "echo: again", text
        print("resume ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
