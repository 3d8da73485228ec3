"""Codex's native binary behind its npm launcher.

`npm install @openai/codex` puts a Node script on PATH (`bin/codex.js`). All it does is find the
native binary in the platform package (`@openai/codex-<platform>/vendor/<triple>/bin/codex`),
set two environment variables, and `execve` it. Starting Node to do that takes about 0.1 s on
every agent start and every wake, so fracta runs the binary itself, with the same variables.

Anything it does not recognise (another launcher, a missing platform package, an unknown
platform) leaves the configured binary as it is, and `native: false` in the runtime's options
turns this off.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

LAUNCHER = os.path.join("@openai", "codex", "bin", "codex.js")
# (sys.platform, machine) -> (target triple, platform package), as the launcher names them.
TARGETS = {
    ("linux", "x86_64"): ("x86_64-unknown-linux-musl", "codex-linux-x64"),
    ("linux", "aarch64"): ("aarch64-unknown-linux-musl", "codex-linux-arm64"),
    ("linux", "arm64"): ("aarch64-unknown-linux-musl", "codex-linux-arm64"),
    ("darwin", "x86_64"): ("x86_64-apple-darwin", "codex-darwin-x64"),
    ("darwin", "arm64"): ("aarch64-apple-darwin", "codex-darwin-arm64"),
}


@dataclass(frozen=True)
class Binary:
    path: str
    env: dict[str, str] = field(default_factory=dict)  # what the launcher would have set


def resolve(binary: str) -> Binary:
    """The native binary behind `binary` if it is Codex's npm launcher, else `binary` unchanged."""
    script = os.path.realpath(binary)
    if not script.endswith(os.sep + LAUNCHER):
        return Binary(binary)
    target = TARGETS.get((sys.platform, os.uname().machine.lower()))
    if target is None:
        return Binary(binary)
    triple, package = target
    package_root = os.path.dirname(os.path.dirname(script))
    for vendor in (*_platform_packages(package_root, package), package_root):
        native = os.path.join(vendor, "vendor", triple, "bin", "codex")
        if os.path.isfile(native) and os.access(native, os.X_OK):
            # The launcher names the package manager that installed it (for update hints); fracta
            # turns update checks off, so npm's name is as good as any.
            return Binary(native, {"CODEX_MANAGED_PACKAGE_ROOT": package_root, "CODEX_MANAGED_BY_NPM": "1"})
    return Binary(binary)


def _platform_packages(package_root: str, package: str) -> list[str]:
    """Where Node would find `@openai/<package>` from the launcher's package: its own
    node_modules, then every node_modules folder above it."""
    found = [os.path.join(package_root, "node_modules", "@openai", package)]
    folder = os.path.dirname(package_root)
    while True:
        if os.path.basename(folder) == "node_modules":
            found.append(os.path.join(folder, "@openai", package))
        else:
            found.append(os.path.join(folder, "node_modules", "@openai", package))
        parent = os.path.dirname(folder)
        if parent == folder:
            return found
        folder = parent
