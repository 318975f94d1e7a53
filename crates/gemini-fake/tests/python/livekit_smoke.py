"""Drives the fake server with LiveKit's Google plugin (`livekit-plugins-google`).

Usage: python livekit_smoke.py BASE_URL   (for example ws://127.0.0.1:PORT; the model is 3.8)

No LiveKit server and no room: the plugin's `RealtimeSession` is used directly, the way an
`AgentSession` would use it (chat context updates, `generate_reply`, tool outputs written back
into the chat context, room audio pushed frame by frame). Exits 0 when every step behaves as the fake's scripted model promises,
printing one line per step.
"""

import asyncio
import struct
import sys

from google.genai import _api_client
from google.genai import types
from livekit import rtc
from livekit.agents import llm
from livekit.plugins import google

MODEL = "gemini-3.8-live"


def serve_plain_websocket(base_url):
    """Keeps the SDK on the fake's ws:// URL.

    The plugin builds its own `google.genai.Client`; with an API key that client rewrites the
    WebSocket scheme to wss:// and attaches a TLS context, and the fake serves plain ws://.
    Every frame stays the plugin's and the SDK's own.
    """
    _api_client.BaseApiClient._websocket_base_url = lambda self, http_options=None: base_url
    original_init = _api_client.BaseApiClient.__init__

    def init_without_tls(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self._websocket_ssl_ctx = {}

    _api_client.BaseApiClient.__init__ = init_without_tls


async def read_generation(event):
    """Text, number of 24 kHz audio frames, and function calls of one generation."""
    text, frames, calls = "", 0, []
    async for message in event.message_stream:
        async for chunk in message.text_stream:
            text += chunk
        async for frame in message.audio_stream:
            assert frame.sample_rate == 24000, frame.sample_rate
            frames += 1
    async for call in event.function_stream:
        calls.append(call)
    return text, frames, calls


async def main(base_url):
    serve_plain_websocket(base_url)

    @llm.function_tool(name="get_time", description="The current time.")
    async def get_time() -> str:
        return "noon"

    model = google.realtime.RealtimeModel(
        model=MODEL,
        api_key="fake-key",
        http_options=types.HttpOptions(base_url=base_url, api_version="v1beta"),
    )
    session = model.session()
    created = asyncio.Queue()
    session.on("generation_created", created.put_nowait)
    errors = []
    session.on("error", errors.append)
    try:
        await session.update_tools([get_time])

        chat = llm.ChatContext.empty()
        chat.add_message(role="user", content="hello")
        await session.update_chat_ctx(chat)
        reply = await asyncio.wait_for(session.generate_reply(), 10)
        assert reply.user_initiated
        text, frames, _ = await asyncio.wait_for(read_generation(reply), 10)
        assert text == "echo: hello", text
        assert frames == 2, frames  # one 40 ms chunk per word
        await created.get()
        print("echo ok")

        chat = session.chat_ctx
        chat.add_message(role="user", content="what is get_time now")
        await session.update_chat_ctx(chat)
        reply = await asyncio.wait_for(session.generate_reply(), 10)
        _, _, calls = await asyncio.wait_for(read_generation(reply), 10)
        await created.get()
        assert [c.name for c in calls] == ["get_time"], calls
        # On 3.8 a declaration without `behavior` is NON_BLOCKING: the model goes on and
        # completes its turn after the call.
        going_on = await asyncio.wait_for(created.get(), 10)
        text, _, _ = await asyncio.wait_for(read_generation(going_on), 10)
        assert text == "working on get_time", text
        call = calls[0]
        output = await get_time()
        chat = session.chat_ctx
        chat.items.append(call)
        chat.items.append(
            llm.FunctionCallOutput(call_id=call.call_id, name=call.name, output=output, is_error=False)
        )
        await session.update_chat_ctx(chat)
        answer = await asyncio.wait_for(created.get(), 10)
        assert not answer.user_initiated
        text, _, _ = await asyncio.wait_for(read_generation(answer), 10)
        assert text == 'get_time returned {"output":"noon"}', text
        print("tool ok")

        # A caller speaks: 1.2 s of a loud square wave then 0.6 s of silence, as 10 ms frames
        # of 48 kHz room audio that the plugin resamples to 16 kHz before sending.
        transcripts = []
        session.on("input_audio_transcription_completed", transcripts.append)
        loud = struct.pack("<480h", *([3000] * 12 + [-3000] * 12) * 20)
        quiet = bytes(960)
        for chunk in [loud] * 120 + [quiet] * 60:
            session.push_audio(rtc.AudioFrame(chunk, 48000, 1, 480))
        answer = await asyncio.wait_for(created.get(), 10)
        text, _, _ = await asyncio.wait_for(read_generation(answer), 10)
        heard = [t.transcript for t in transcripts if t.is_final]
        assert heard == ["[audio 1.20s]"], [(t.transcript, t.is_final) for t in transcripts]
        assert text == "echo: [audio 1.20s]", text
        print("audio ok")
    finally:
        await session.aclose()
        await model.aclose()
    assert not errors, errors


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
