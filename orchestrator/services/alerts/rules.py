"""The alerts file: its channels and rules, read once and again whenever the file changes."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from orchestrator.domain.alerts import AlertsConfig
from orchestrator.errors import ConfigError
from orchestrator.settings import Settings

log = logging.getLogger(__name__)


def load_alerts(path: Path | None) -> AlertsConfig:
    """Read and check the alerts file (no file configured: no channels, no rules)."""
    if path is None:
        return AlertsConfig()
    try:
        data = yaml.safe_load(path.read_text()) or {}
        return AlertsConfig.model_validate(data)
    except OSError as exc:
        raise ConfigError(f"alerts file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"alerts file {path} is not YAML: {exc}") from None
    except ValidationError as exc:
        raise ConfigError(f"alerts file {path}: {_problems(exc)}") from None


def _problems(exc: ValidationError) -> str:
    """Each problem as "where: what" (a whole-file problem names its place itself)."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        what = error["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {what}" if where else what)
    return "; ".join(problems)


def known_channels(settings: Settings) -> set[str]:
    """The channel names a schedule may use (those of the alerts file)."""
    return set(load_alerts(settings.alerts_file).channels)


@dataclass
class AlertRules:
    """One alerts file, re-read when it changes."""

    path: Path | None
    _config: AlertsConfig = field(default_factory=AlertsConfig)
    _stamp: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def config(self) -> AlertsConfig:
        """The current file's rules; a broken edit keeps the last good ones (and says so)."""
        path = self.path
        if path is None:
            return self._config
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            stamp = None
        with self._lock:
            if stamp != self._stamp:
                try:
                    self._config = load_alerts(path)
                except ConfigError as exc:
                    log.error("%s; keeping the alert rules read before", exc)
                self._stamp = stamp
            return self._config


_files: dict[Path | None, AlertRules] = {}
_files_lock = threading.Lock()


def alert_rules(settings: Settings) -> AlertRules:
    """This process's reader of the settings' alerts file (one per file)."""
    with _files_lock:
        found = _files.get(settings.alerts_file)
        if found is None:
            found = _files[settings.alerts_file] = AlertRules(settings.alerts_file)
        return found
