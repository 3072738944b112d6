"""Transfer records and the activity log: a change cursor with rising iteration tokens."""

# Every change of a transfer takes the next sequence number; a transfer's place in the log is
# its latest change, so a reader after token T sees each changed transfer once, in change
# order. Tokens are integers. Each epoch (node start or restart) starts above every token
# issued before; a token below the epoch's base, or above the last one issued, is invalid.

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterator

from hstssim.model import Transfer


class TransferStore:
    """Holds the transfers of one node and orders their changes."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._transfers: dict[str, Transfer] = {}
        self._base = int(clock() * 1000)
        self._seq = self._base
        self._seqs: list[int] = []
        self._ids: list[str] = []

    @property
    def base_token(self) -> int:
        """Return the token that means "the start of this epoch"."""
        return self._base

    @property
    def last_token(self) -> int:
        """Return the newest token issued."""
        return self._seq

    def __iter__(self) -> Iterator[Transfer]:
        return iter(list(self._transfers.values()))

    def __len__(self) -> int:
        return len(self._transfers)

    def get(self, transfer_id: str) -> Transfer | None:
        """Return a transfer by id, or None if unknown or dropped."""
        return self._transfers.get(transfer_id)

    def add(self, transfer: Transfer) -> None:
        """Keep a new transfer and log its creation."""
        self._transfers[transfer.id] = transfer
        self.record_change(transfer)

    def record_change(self, transfer: Transfer, min_interval: float = 0.0) -> bool:
        """Log a change of the transfer; with min_interval, skip if it was logged recently."""
        now = self._clock()
        if min_interval > 0 and now - transfer.last_logged < min_interval:
            return False
        self._seq += 1
        transfer.last_seq = self._seq
        transfer.last_change = now
        transfer.last_logged = now
        self._seqs.append(self._seq)
        self._ids.append(transfer.id)
        self._compact_if_sparse()
        return True

    def valid_token(self, token: int) -> bool:
        """Tell whether this epoch issued the token."""
        return self._base <= token <= self._seq

    def latest_change_at(self, token: int) -> Transfer | None:
        """Return the transfer whose latest change is the one logged under token, if any."""
        i = bisect.bisect_left(self._seqs, token)
        if i == len(self._seqs) or self._seqs[i] != token:
            return None
        transfer = self._transfers.get(self._ids[i])
        return transfer if transfer is not None and transfer.last_seq == token else None

    def page(
        self, after: int | None, count: int, accept: Callable[[Transfer], bool]
    ) -> tuple[list[Transfer], int]:
        """Return up to count accepted transfers changed after the token, and the next token."""
        start = self._base if after is None else after
        found: list[Transfer] = []
        next_token = start
        for i in range(bisect.bisect_right(self._seqs, start), len(self._seqs)):
            transfer = self._transfers.get(self._ids[i])
            if transfer is None or transfer.last_seq != self._seqs[i] or not accept(transfer):
                continue
            found.append(transfer)
            next_token = self._seqs[i]
            if len(found) >= count:
                break
        return found, next_token

    def drop_ended_before(self, cutoff: float) -> int:
        """Forget transfers that ended before the cutoff time; return how many."""
        gone = [
            t.id for t in self._transfers.values() if t.ended_at is not None and t.ended_at < cutoff
        ]
        for transfer_id in gone:
            del self._transfers[transfer_id]
        return len(gone)

    def restart(self, *, keep_history: bool = False) -> None:
        """Start a new epoch: take every transfer out of the log and forget the ended ones.

        With ``keep_history`` the ended ones stay (records kept in the node's Redis): readable
        by id and logged again in the new epoch, oldest change first, as a re-indexed log.
        """
        ended = sorted(
            (t for t in self._transfers.values() if t.is_terminal), key=lambda t: t.last_change
        )
        self._transfers = {t.id: t for t in self._transfers.values() if not t.is_terminal}
        for transfer in self._transfers.values():
            transfer.last_seq = None
            transfer.last_logged = 0.0
        self._base = max(self._seq + 1, int(self._clock() * 1000))
        self._seq = self._base
        self._seqs.clear()
        self._ids.clear()
        if keep_history:
            for transfer in ended:
                self._transfers[transfer.id] = transfer
                self._relog(transfer)

    def _relog(self, transfer: Transfer) -> None:
        """Put a kept transfer into the new epoch's log without touching its change time."""
        self._seq += 1
        transfer.last_seq = self._seq
        self._seqs.append(self._seq)
        self._ids.append(transfer.id)

    def _compact_if_sparse(self) -> None:
        """Drop log entries superseded by later changes once they dominate the log."""
        if len(self._seqs) < 2 * len(self._transfers) + 1024:
            return
        live = sorted(
            (t.last_seq, t.id) for t in self._transfers.values() if t.last_seq is not None
        )
        self._seqs = [seq for seq, _ in live]
        self._ids = [transfer_id for _, transfer_id in live]
