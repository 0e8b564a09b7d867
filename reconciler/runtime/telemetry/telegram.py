"""The Telegram side of alerts: one message per call through python-telegram-bot, and the bot token kept out of
every log record of the process.

Built by ``telemetry.alerts.build_alerter`` and called only by the ``Alerter``'s sending thread (one thread, one
private asyncio loop: python-telegram-bot is async). The token sits in the Bot API's URLs, so it is scrubbed from
log records and from the error texts the alerter logs and stores (``alert_events.error``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger("reconciler.alerts")

_SECRETS: set[str] = set()


def _scrubbing_factory(create: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = create(*args, **kwargs)
        if _SECRETS:
            message = record.getMessage()
            if any(secret in message for secret in _SECRETS):
                for secret in _SECRETS:
                    message = message.replace(secret, "<token>")
                record.msg, record.args = message, ()
        return record

    return factory


def never_log(secret: str) -> None:
    """Scrub ``secret`` from every log record of this process. The HTTP client under python-telegram-bot logs
    request URLs at INFO, and the Bot API puts the token in the URL: a logger level set elsewhere is not enough."""
    if not secret:
        return
    if not _SECRETS:
        logging.setLogRecordFactory(_scrubbing_factory(logging.getLogRecordFactory()))
    _SECRETS.add(secret)


class TelegramSender:
    """Sends one message per call through python-telegram-bot on a private event loop (one thread only)."""

    def __init__(self, token: str, chat_id: str, base_url: str | None = None) -> None:
        self._token = token
        self._chat_id = chat_id
        self._base_url = base_url
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bot: object | None = None
        never_log(token)
        # The library's debug lines name API methods: noise in the operator's log.
        logging.getLogger("telegram").setLevel(logging.WARNING)

    def scrub(self, text: str) -> str:
        return text.replace(self._token, "<token>") if self._token else text

    def __call__(self, text: str) -> None:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._send(text))

    async def _send(self, text: str) -> None:
        from telegram import Bot

        if self._bot is None:
            bot = Bot(self._token, base_url=self._base_url) if self._base_url else Bot(self._token)
            await bot.initialize()  # getMe: a wrong token fails here, once
            self._bot = bot
        assert isinstance(self._bot, Bot)
        await self._bot.send_message(chat_id=self._chat_id, text=text)

    def close(self) -> None:
        if self._loop is None:
            return
        from telegram import Bot

        if isinstance(self._bot, Bot):
            try:
                self._loop.run_until_complete(self._bot.shutdown())
            except Exception as exc:
                log.debug("closing the Telegram client: %s", self.scrub(str(exc)))
        self._loop.close()
        self._loop = None
