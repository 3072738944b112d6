"""The transfer manager: queueing, session slots, statuses, control and node-side retries."""

from __future__ import annotations

import asyncio
import copy
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from hstssim import errors_table as codes
from hstssim import foreign, model, paths, sources
from hstssim.context import NodeContext
from hstssim.dataplane import open_session
from hstssim.errors_table import SessionFailure
from hstssim.faults import FailTransfers
from hstssim.model import ForeignLoad, Precalc, SessionRecord, Transfer, now_usec
from hstssim.network import Flow
from hstssim.pacing import Pacer
from hstssim.slots import SessionSlots
from hstssim.spec import TransferSpec
from hstssim.streams import ReceivePolicy, receive_items, send_items
from hstssim.tracker import SessionTracker
from hstssim.wire import Link, LinkClosed

log = logging.getLogger(__name__)
CANCEL_WAIT_SECONDS = 5.0


@dataclass
class _Control:
    """The live handles of one transfer: its pacer, its task, and what the user asked."""

    pacer: Pacer
    task: asyncio.Task[None] | None = None
    canceled: bool = False
    session: SessionRecord | None = field(default=None)


def redact(raw: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of a POSTed spec with its secrets hidden."""
    shown: dict[str, Any] = _json_copy(raw)
    for key in ("token", "remote_password", "ssh_private_key", "content_protection_password"):
        if key in shown:
            shown[key] = "***"
    return shown


class TransferManager:
    """Runs the transfers POSTed to this node, each as a series of sessions."""

    def __init__(self, ctx: NodeContext) -> None:
        self._ctx = ctx
        self._controls: dict[str, _Control] = {}
        self._slots = SessionSlots(lambda: max(1, ctx.config.max_concurrent_sessions))

    def create(
        self,
        spec: TransferSpec,
        raw: dict[str, Any],
        access_key: str | None,
        load: ForeignLoad | None = None,
    ) -> Transfer:
        """Queue a new transfer (status waiting) and start its lifecycle (load: another
        client's transfer, which moves no files)."""
        config = self._ctx.config
        tags = copy.deepcopy(spec.tags)
        if access_key is not None:
            tags = tags or {}
            aspera = tags.setdefault("aspera", {})
            if isinstance(aspera, dict):
                aspera.setdefault("node", {}).setdefault("access_key", access_key)
        transfer = Transfer(
            id=str(uuid.uuid4()),
            spec=spec,
            raw_spec=redact(raw),
            tags=tags,
            target_rate_kbps=spec.target_rate_kbps or config.default_target_rate_kbps,
            min_rate_kbps=spec.min_rate_kbps,
            rate_policy=spec.rate_policy,
            foreign=load,
        )
        control = _Control(pacer=Pacer(transfer.target_rate_kbps))
        self._controls[transfer.id] = control
        self._ctx.store.add(transfer)
        if load is None:  # transfers_created counts what Node API clients posted
            self._ctx.counters.transfers_created += 1
        control.task = asyncio.get_running_loop().create_task(self._lifecycle(transfer, control))
        return transfer

    def progress(self, transfer: Transfer) -> None:
        """Log a running transfer's progress, at most once per progress_log_interval."""
        self._ctx.store.record_change(
            transfer, min_interval=max(1e-6, self._ctx.config.progress_log_interval)
        )

    def _set_status(self, transfer: Transfer, status: str) -> None:
        """Change the status (a paused transfer stays paused) and log the change."""
        control = self._controls.get(transfer.id)
        if status in (model.RUNNING, model.WAITING) and control and control.pacer.paused:
            status = model.PAUSED
        if transfer.status != status:
            transfer.status = status
            self._ctx.store.record_change(transfer)

    def _finish(self, transfer: Transfer, status: str, code: int, desc: str) -> None:
        """End the transfer for good."""
        transfer.status = status
        transfer.error_code = code
        transfer.error_desc = desc
        if status == model.FAILED and self._ctx.faults.take("error_code_string") is not None:
            transfer.error_code_as_string = True
        transfer.end_time_usec = now_usec()
        transfer.ended_at = time.time()
        self._controls.pop(transfer.id, None)
        self._ctx.store.record_change(transfer)

    async def _lifecycle(self, transfer: Transfer, control: _Control) -> None:
        """Run sessions until success, a permanent error, cancel, or retries run out."""
        retries = 0
        try:
            while True:
                await control.pacer.until_running()
                await self._slots.acquire()
                try:
                    code, desc = await self._session(transfer, control, retries)
                finally:
                    self._slots.release()
                if code == 0:
                    if self._ctx.faults.take("failed_code_zero") is not None:
                        self._finish(transfer, model.FAILED, 0, "")
                    else:
                        self._finish(transfer, model.COMPLETED, 0, "")
                    return
                if codes.is_retryable(code, desc) and retries < self._ctx.config.max_retries:
                    retries += 1
                    self._set_status(transfer, model.PARTIALLY_COMPLETED)
                    await asyncio.sleep(self._ctx.config.retry_delay_seconds)
                    self._set_status(transfer, model.WAITING)
                    continue
                self._finish(transfer, model.FAILED, code, desc)
                return
        except asyncio.CancelledError:
            if not control.canceled:
                raise
            desc = codes.describe(codes.USER_CANCEL)
            session = control.session
            if session is not None and not session.end_time_usec:
                # files[] status is transferring, completed or failed (OAS fileMetadata)
                SessionTracker(transfer, session, _no_change).fail_open_files(
                    codes.USER_CANCEL, desc
                )
                self._end_session(session, codes.USER_CANCEL, desc)
            self._finish(transfer, model.CANCELED, codes.USER_CANCEL, desc)

    def _end_session(self, session: SessionRecord, code: int, desc: str) -> None:
        """Close a session record."""
        session.status = model.COMPLETED if code == 0 else model.FAILED
        session.error_code = code
        session.error_desc = desc
        session.end_time_usec = now_usec()

    async def _session(self, transfer: Transfer, control: _Control, retry: int) -> tuple[int, str]:
        """Run one session and return its (error_code, error_desc); 0 means success."""
        spec = transfer.spec
        session = SessionRecord(
            id=transfer.id if retry == 0 else str(uuid.uuid4()),
            retry_count=retry,
            start_time_usec=now_usec(),
            target_rate_kbps=transfer.target_rate_kbps,
            min_rate_kbps=transfer.min_rate_kbps,
            args_scan=len(spec.paths),
        )
        transfer.sessions.append(session)
        control.session = session
        self._set_status(transfer, model.RUNNING)
        tracker = SessionTracker(transfer, session, lambda: self.progress(transfer))
        opened: list[Link] = []
        try:
            fault = self._ctx.faults.take("fail_transfers")
            if isinstance(fault, FailTransfers):
                raise SessionFailure(fault.error_code, fault.error_desc)
            if transfer.foreign is not None:
                await self._foreign_session(transfer, control, session)
            else:
                await self._data_session(transfer, control, session, tracker, opened)
            code, desc = 0, ""
        except SessionFailure as failure:
            code, desc = failure.code, failure.desc
        except LinkClosed:
            code, desc = codes.CONNECTION_LOST, codes.describe(codes.CONNECTION_LOST)
        except Exception:  # a local I/O error or a simulator bug must not leave it "running"
            log.exception("%s: session of %s crashed", self._ctx.config.name, transfer.id)
            code, desc = codes.INTERNAL_ERROR, codes.describe(codes.INTERNAL_ERROR)
        finally:
            self._ctx.network.leave(transfer.id)
            for link in opened:
                link.abort()  # no-op after a polite close; frees the socket otherwise
        if code != 0:
            tracker.fail_open_files(code, desc)
        self._end_session(session, code, desc)
        self._ctx.store.record_change(transfer)
        return code, desc

    async def _data_session(
        self,
        transfer: Transfer,
        control: _Control,
        session: SessionRecord,
        tracker: SessionTracker,
        opened: list[Link],
    ) -> None:
        """Move the files over the data plane; the link opened goes into opened."""
        spec = transfer.spec
        drop = self._ctx.faults.take("drop_connection")
        items: list[sources.Item] = []
        if spec.direction == "send":
            items = sources.plan(self._ctx.config.docroot, spec.source_root, spec.paths)
            self._note_plan(transfer, session, sources.precalc_of(items))
            items = [item for item in items if not tracker.done_before(item)]
        link, welcome, rtt = await open_session(
            self._ctx,
            spec.remote_host,
            # An SSH login is made on ssh_port, as ascp's control connection; the peer's
            # one data plane listener stands for its SSH server and its FASP port alike.
            spec.ssh_port if spec.ssh_login else spec.fasp_port,
            self._hello(transfer, session),
            getattr(drop, "after_bytes", None),
        )
        opened.append(link)
        session.server_node_id = str(welcome.get("server_node_id", ""))
        session.client_ip_address = link.local_address
        session.server_ip_address = link.peer_address
        session.network_delay_usec = rtt
        peer = self._ctx.network.name_of(session.server_node_id)
        self._join_network(transfer, control, session, peer)
        if spec.direction == "send":
            await send_items(link, items, control.pacer, tracker, spec.file_checksum)
        else:
            self._note_plan(transfer, session, _precalc_from(welcome))
            await receive_items(link, self._receive_policy(spec), control.pacer, tracker)
        await link.close()

    async def _foreign_session(
        self, transfer: Transfer, control: _Control, session: SessionRecord
    ) -> None:
        """Run another client's session: bytes counted at the share its links give it."""
        load = transfer.foreign
        assert load is not None
        self._join_network(transfer, control, session, load.peer)
        await foreign.move(load, session, control.pacer, lambda: self.progress(transfer))

    def _join_network(
        self, transfer: Transfer, control: _Control, session: SessionRecord, peer: str | None
    ) -> None:
        """Put the running session on the network, which paces it by its share of the links."""
        loop = asyncio.get_running_loop()
        here = self._ctx.config.name
        outbound = transfer.spec.direction == "send"

        def apply(kbps: float | None) -> None:
            if control.session is session and not session.end_time_usec:
                session.share_kbps = kbps
                control.pacer.set_share(kbps)

        def deliver(kbps: float | None) -> None:
            # Always through the loop, so shares arrive in the order the network sent them.
            try:
                loop.call_soon_threadsafe(apply, kbps)
            except RuntimeError:  # the node's loop has closed: nothing left to pace
                log.debug("share for %s after its node stopped", transfer.id)

        self._ctx.network.join(
            Flow(
                transfer_id=transfer.id,
                node=here,
                src=here if outbound else peer,
                dst=peer if outbound else here,
                target_kbps=transfer.target_rate_kbps,
                min_kbps=transfer.min_rate_kbps,
                policy=transfer.rate_policy,
                deliver=deliver,
                foreign=transfer.foreign is not None,
                held=control.pacer.paused,
            )
        )

    def _hello(self, transfer: Transfer, session: SessionRecord) -> dict[str, Any]:
        """Return the handshake message for a session of this transfer."""
        spec = transfer.spec
        return {
            "direction": spec.direction,
            "token": spec.token,
            "remote_user": spec.remote_user,
            "remote_access_key": spec.remote_access_key,
            "transfer_id": transfer.id,
            "session_id": session.id,
            "client_node_id": self._ctx.config.node_id,
            "destination_root": spec.destination_root,
            "source_root": spec.source_root,
            "paths": [{"source": p.source, "destination": p.destination} for p in spec.paths],
            "overwrite": spec.overwrite,
            "resume_policy": spec.resume_policy,
            "cookie": spec.cookie,
            "remote_password": spec.remote_password,
            "ssh_private_key": spec.ssh_private_key,
            "sshfp": spec.sshfp,
        }

    def _receive_policy(self, spec: TransferSpec) -> ReceivePolicy:
        """Return how a download writes under this node's docroot."""
        root = paths.normalize(spec.destination_root)
        if root is None:
            raise SessionFailure(codes.BAD_PATH)

        def written() -> None:
            self._ctx.counters.files_written += 1

        return ReceivePolicy(
            docroot=self._ctx.config.docroot,
            destination_root=root,
            allowed=("",),
            overwrite=spec.overwrite,
            resume_policy=spec.resume_policy,
            on_file_written=written,
            file_checksum=spec.file_checksum,
        )

    def _note_plan(self, transfer: Transfer, session: SessionRecord, plan: Precalc) -> None:
        """Record the job size on the session, and on the transfer if precalc was asked."""
        session.files_planned = plan.files_expected
        session.dirs_planned = plan.directories_expected
        session.precalc = plan
        if transfer.spec.precalculate_job_size and transfer.precalc is None:
            transfer.precalc = plan
            self._ctx.store.record_change(transfer)

    def control_of(self, transfer: Transfer) -> _Control | None:
        """Return the live handles of a transfer that has not ended."""
        return self._controls.get(transfer.id)

    def pause(self, transfer: Transfer) -> None:
        """Hold the transfer (status paused) until resumed."""
        control = self._controls.get(transfer.id)
        if control is None or control.pacer.paused:
            return
        control.pacer.pause()
        self._ctx.network.update(transfer.id, held=True)
        self._set_status(transfer, model.PAUSED)

    def resume(self, transfer: Transfer) -> None:
        """Let a paused transfer go on."""
        control = self._controls.get(transfer.id)
        if control is None or not control.pacer.paused:
            return
        control.pacer.resume()
        self._ctx.network.update(transfer.id, held=False)
        in_session = control.session is not None and not control.session.end_time_usec
        self._set_status(transfer, model.RUNNING if in_session else model.WAITING)

    async def cancel(self, transfer: Transfer) -> None:
        """Stop the transfer for good and wait until its status is canceled."""
        control = self._controls.get(transfer.id)
        if control is None or control.task is None:
            return
        if not control.canceled:
            control.canceled = True
            control.pacer.resume()
            control.task.cancel()
        await asyncio.wait({control.task}, timeout=CANCEL_WAIT_SECONDS)

    def set_rates(
        self,
        transfer: Transfer,
        target_rate_kbps: int | None,
        min_rate_kbps: int | None,
        rate_policy: str | None,
    ) -> None:
        """Change the rates; the running stream follows at once (re-shared if on the network)."""
        control = self._controls.get(transfer.id)
        if target_rate_kbps is not None:
            transfer.target_rate_kbps = target_rate_kbps
            if control is not None and control.session is not None:
                control.session.target_rate_kbps = target_rate_kbps
        if min_rate_kbps is not None:
            transfer.min_rate_kbps = min_rate_kbps
        if rate_policy is not None:
            transfer.rate_policy = rate_policy
        shared = self._ctx.network.update(
            transfer.id,
            target_kbps=transfer.target_rate_kbps,
            min_kbps=transfer.min_rate_kbps,
            policy=transfer.rate_policy,
        )
        if control is not None and target_rate_kbps is not None and not shared:
            control.pacer.set_rate(target_rate_kbps)
        self._ctx.store.record_change(transfer)

    async def shutdown(self) -> None:
        """Stop every transfer task (the node is going away; statuses stay as they are)."""
        tasks = [c.task for c in self._controls.values() if c.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _json_copy(value: Any) -> Any:
    """Copy parsed JSON (dicts, lists, scalars): what copy.deepcopy does, without its memo."""
    if isinstance(value, dict):
        return {key: _json_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_copy(item) for item in value]
    if value is None or isinstance(value, (str, int, float)):
        return value
    return copy.deepcopy(value)


def _no_change() -> None:
    """Ignore a progress report (the change is logged once the transfer ends)."""


def _precalc_from(welcome: dict[str, Any]) -> Precalc:
    """Read the job size a download's server announced."""
    return Precalc(
        bytes_expected=int(welcome.get("bytes_expected", 0)),
        files_expected=int(welcome.get("files_expected", 0)),
        directories_expected=int(welcome.get("directories_expected", 0)),
    )
