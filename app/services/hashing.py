"""Password hashing with argon2id, off the event loop.

One argon2id hash costs ``argon2_memory_kib`` of memory and tens of milliseconds of CPU; run on
the loop it would stall every other request of the worker. argon2-cffi releases the GIL while
hashing, so a small thread pool (``hash_threads``) gives real parallelism, and its size bounds
the memory hashing can take at once.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class PasswordHasher:
    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int, threads: int) -> None:
        self._argon2 = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            type=argon2.Type.ID,
        )
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="argon2")

    async def hash(self, password: str) -> str:
        """A PHC-encoded argon2id hash (``$argon2id$v=19$m=...$salt$hash``), random salt."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._argon2.hash, password)

    async def verify(self, encoded: str, password: str) -> bool:
        """True if ``password`` matches; a wrong password or an unreadable hash is False."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, self._argon2.verify, encoded, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError, UnicodeEncodeError):
            return False

    def needs_rehash(self, encoded: str) -> bool:
        """True if ``encoded`` was made with other parameters than the configured ones."""
        try:
            return self._argon2.check_needs_rehash(encoded)
        except (InvalidHashError, UnicodeEncodeError):
            return False

    @staticmethod
    def accepts(encoded: str) -> bool:
        """Whether an imported hash (AddHumanUser ``hashedPassword``) is one we can verify."""
        if not encoded.isascii():  # a PHC string is ASCII; argon2 cannot encode anything else
            return False
        try:
            argon2.extract_parameters(encoded)
        except InvalidHashError:
            return False
        return True

    def close(self) -> None:
        """Stop the pool without blocking the loop; a hash in flight finishes on its own."""
        self._pool.shutdown(wait=False, cancel_futures=True)
