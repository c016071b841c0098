"""``netops``: call a running gateway from the shell.

    netops methods [--url URL]
    netops help [METHOD]
    netops call [--url URL] [--json] resolve example.com
    netops call fetch_url https://example.com/ -p max_bytes=100
    netops multicall [--url URL] [FILE]        one JSON call per line, e.g. ["resolve", "example.com"]
    netops completion bash|zsh                 a completion script for the shell

Options such as ``--url`` and ``--json`` go before or after the command.

Output is for people by default (tables for lists of records, colour on a
terminal) and JSON with ``--json``.  An error prints one line with its code
and exits 1; a gateway that cannot be reached exits 2; a bad command line exits 64.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import ssl
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from gateway.client import SCHEMES, GatewayUnreachable, NetOpsClient, connect, tls_context
from gateway.errors import GatewayError

__all__ = ["main"]

DEFAULT_URL = "jsonrpc://127.0.0.1:7002"
EXIT_ERROR, EXIT_UNREACHABLE, EXIT_USAGE = 1, 2, 64


class Style:
    """ANSI colour when writing to a terminal (and NO_COLOR is unset), nothing otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self.on = stream.isatty() and "NO_COLOR" not in os.environ

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.on else text

    def key(self, text: str) -> str:
        """A field name."""
        return self._wrap("1", text)

    def bad(self, text: str) -> str:
        """An error."""
        return self._wrap("31", text)

    def dim(self, text: str) -> str:
        """Secondary text."""
        return self._wrap("2", text)


_CONVERT: dict[str, Callable[[str], Any]] = {
    "int": int,
    "double": float,
    "boolean": lambda t: {"true": True, "false": False}[t.lower()],
}


def parse_value(text: str, kind: str = "") -> Any:
    """A command-line argument of the parameter's type (from introspection): strings stay as typed.

    Without a known type, JSON numbers, booleans, arrays and objects are read as such.
    """
    if kind == "string":
        return text
    if kind in _CONVERT:
        try:
            return _CONVERT[kind](text)
        except (ValueError, KeyError):
            raise UsageError(f"{text!r} is not a valid {kind}") from None
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, (int, float, bool, list, dict)) else text


def _parameters(client: NetOpsClient, name: str) -> list[tuple[str, str, str]]:
    """(name, type, default) of each parameter, read from the method's help."""
    return re.findall(r"^  (\w+) \((\w+)(?: = ([^)]*))?\)", client.help(name), flags=re.MULTILINE)


def _scalar(value: Any) -> str:
    """A scalar, or a list of scalars, as one cell of text ("-" when empty)."""
    if isinstance(value, list):
        return ", ".join(map(_scalar, value)) or "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value) if value != "" else "-"


def render(value: Any, style: Style, indent: str = "") -> list[str]:
    """Human-readable lines: scalars as key: value, lists of structs as tables, nesting indented."""
    if isinstance(value, dict):
        lines = []
        width = max((len(k) for k in value), default=0)
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item and not _is_flat_list(item):
                lines.append(f"{indent}{style.key(key)}:")
                lines += render(item, style, indent + "  ")
            else:
                lines.append(f"{indent}{style.key(key.ljust(width))}  {_scalar(item)}")
        return lines
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value) and all(_is_flat_struct(v) for v in value):
            return _table(value, style, indent)
        return [line for item in value for line in render(item, style, indent + "- ")] if value else [f"{indent}-"]
    return [f"{indent}{_scalar(value)}"]


def _is_flat_list(value: Any) -> bool:
    return isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value)


def _is_flat_struct(value: dict[str, Any]) -> bool:
    return all(not isinstance(v, dict) and (not isinstance(v, list) or _is_flat_list(v)) for v in value.values())


def _table(rows: list[dict[str, Any]], style: Style, indent: str) -> list[str]:
    columns = list(rows[0])
    cells = [[_scalar(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    if style.on:  # on a terminal: the widest column gives way until the table fits (cells end in "…")
        room = shutil.get_terminal_size().columns - len(indent) - 2 * (len(columns) - 1)
        while sum(widths) > room and max(widths) > 12:
            widest = widths.index(max(widths))
            widths[widest] -= 1
        cells = [[c if len(c) <= w else c[: w - 1] + "…" for c, w in zip(row, widths, strict=True)] for row in cells]
    header = "  ".join(style.key(c[:w].ljust(w)) for c, w in zip(columns, widths, strict=True))
    body = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return [indent + header.rstrip(), *(indent + line for line in body)]


def _signature(client: NetOpsClient, name: str) -> tuple[str, str]:
    """``name(param: type = default, …) -> type`` and the one-line help, from introspection."""
    help_text = client.help(name)
    return _signature_of(name, help_text), help_text.split("\n", 1)[0]


def _signature_of(name: str, help_text: str) -> str:
    params = re.findall(r"^  (\w+) \((\w+)(?: = ([^)]*))?\)", help_text, flags=re.MULTILINE)
    returns = re.search(r"^Returns: (\S+)", help_text, flags=re.MULTILINE)
    shown = ", ".join(f"{p}: {t}{'=' + d if d else ''}" for p, t, d in params)
    return f"{name}({shown}) -> {returns.group(1) if returns else '?'}"


def cmd_methods(client: NetOpsClient, args: argparse.Namespace, out: TextIO, style: Style) -> int:
    """List methods with signatures and one-line help (or print a whole description format)."""
    if args.format == "openrpc":
        json.dump(client.call("rpc.discover"), out, indent=2)
        out.write("\n")
        return 0
    if args.format == "thrift":
        from gateway.idl import render
        from gateway.ops import default_registry

        out.write(render(default_registry()))  # the IDL of this package's registry, which the gateway shares
        return 0
    names = client.methods()
    if args.format == "markdown":
        out.write("# NetOps Gateway methods\n")
        for name in names:
            signature, _ = _signature(client, name)
            out.write(f"\n## `{signature}`\n\n```\n{client.help(name)}\n```\n")
        return 0
    described = {name: _signature(client, name) for name in names}
    if args.json:
        json.dump([{"name": n, "signature": s, "help": h} for n, (s, h) in described.items()], out, indent=2)
        out.write("\n")
        return 0
    for signature, summary in described.values():
        out.write(f"{style.key(signature)}\n    {summary}\n")
    return 0


def _needs_types(args: argparse.Namespace) -> bool:
    """Whether the call's arguments need the method's parameter types: named ones do, and so does a
    positional one that would read as a number, boolean, array or object (``127`` may be a host)."""
    return bool(args.param) or any(not isinstance(parse_value(a), str) for a in args.args)


def cmd_call(client: NetOpsClient, args: argparse.Namespace, out: TextIO, style: Style) -> int:
    """Call one method and print its result (asking for its parameters first only when they are needed)."""
    params = _parameters(client, args.method) if _needs_types(args) else []
    types = {name: kind for name, kind, _ in params}
    order = list(types)
    values = [parse_value(a, types[order[i]] if i < len(order) else "") for i, a in enumerate(args.args)]
    if not params:
        values = list(args.args)  # every argument reads as a string: no call was needed to know that
    for item in args.param or []:
        key, sep, value = item.partition("=")
        if not sep or key not in types:
            raise UsageError(f"--param takes NAME=VALUE with NAME one of {', '.join(order) or 'none'}, not {item!r}")
        # Named values become positional ones, gaps filled with the declared defaults, so that
        # every transport (XML-RPC has no named arguments) takes the same call.
        index = order.index(key)
        while len(values) < index:
            default = params[len(values)][2]
            if not default:
                raise UsageError(f"give {order[len(values)]} before {key}")
            values.append(json.loads(default))
        values[index : index + 1] = [parse_value(value, types[key])]
    result = client.call(args.method, *values)
    _print(result, args.json, out, style)
    return 0


def cmd_help(client: NetOpsClient, args: argparse.Namespace, out: TextIO, style: Style) -> int:
    """Describe one method (its signature, parameters, result and errors), or list them all."""
    if not args.method:
        return cmd_methods(client, argparse.Namespace(format="text", json=args.json), out, style)
    text = client.help(args.method)
    if args.json:
        json.dump({"name": args.method, "help": text}, out, indent=2)
        out.write("\n")
        return 0
    title, _, rest = text.partition("\n")
    out.write(f"{style.key(_signature_of(args.method, text))}\n\n{title}\n{rest}\n")
    return 0


def cmd_multicall(client: NetOpsClient, args: argparse.Namespace, out: TextIO, style: Style) -> int:
    """Run calls read as JSON lines (["name", arg…] or {"methodName", "params"}) and print results in order."""
    source = open(args.file) if args.file and args.file != "-" else sys.stdin
    try:
        calls: list[Any] = []
        for number, line in enumerate(source, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError:
                raise UsageError(f"line {number} is not JSON") from None
            if isinstance(item, list) and item and isinstance(item[0], str):
                calls.append((item[0], item[1:]))
            elif isinstance(item, dict) and "methodName" in item:
                calls.append(item)
            else:
                raise UsageError(f'line {number}: write ["method", arg, …] or {{"methodName": …, "params": […]}}')
    finally:
        if source is not sys.stdin:
            source.close()
    failed = 0
    for index, result in enumerate(client.multicall(calls)):
        if isinstance(result, GatewayError):
            failed += 1
            item = {"error": {"code": result.code, "message": result.message}}
            if args.json:
                out.write(json.dumps(item) + "\n")
            else:
                out.write(style.bad(f"[{index}] error: {result}") + "\n")
        elif args.json:
            out.write(json.dumps({"result": result}) + "\n")
        else:
            out.write(style.dim(f"[{index}]") + "\n" + "\n".join(render(result, style, "  ")) + "\n")
    return EXIT_ERROR if failed else 0


def cmd_mcp(client: NetOpsClient, args: argparse.Namespace, out: TextIO, style: Style) -> int:
    """Serve MCP on standard input and output until the agent closes it."""
    from gateway.transports.mcp import serve_stdio

    serve_stdio(client, sys.stdin, out)
    return 0


def _print(result: Any, as_json: bool, out: TextIO, style: Style) -> None:
    if as_json:
        json.dump(result, out, indent=2, ensure_ascii=False)
        out.write("\n")
    else:
        out.write("\n".join(render(result, style)) + "\n")


class UsageError(Exception):
    """A command line that cannot be run."""


def _options(defaults: bool) -> argparse.ArgumentParser:
    """The options every command takes. Given after the command, they must not reset what was given
    before it: there they default to nothing (argparse.SUPPRESS)."""
    common = argparse.ArgumentParser(add_help=False)

    def add(*names: str, default: Any = None, **kwargs: Any) -> None:
        common.add_argument(*names, default=default if defaults else argparse.SUPPRESS, **kwargs)

    add(
        "--url",
        default=os.environ.get("NETOPS_URL", DEFAULT_URL),
        help=f"gateway: {'|'.join(SCHEMES)}://host:port (default $NETOPS_URL or {DEFAULT_URL})",
    )
    add("--token-file", metavar="FILE", help="file holding the token to present (default: $NETOPS_TOKEN)")
    add("--tls", default=False, action="store_true", help="speak TLS (implied by --ca-file and --cert)")
    add("--ca-file", metavar="PEM", help="CA to trust for the gateway's certificate (default: system)")
    add("--cert", metavar="PEM", help="client certificate, for a gateway requiring mutual TLS")
    add("--key", metavar="PEM", help="private key of --cert (default: in the --cert file)")
    add("--json", default=False, action="store_true", help="print JSON instead of text")
    add("--timeout", default=30.0, type=float, help="seconds to wait for each answer (default 30)")
    return common


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="netops", description="Call a NetOps Gateway.", parents=[_options(True)])
    common = _options(False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    methods = sub.add_parser("methods", parents=[common], help="list methods with signatures and help")
    methods.add_argument(
        "--format",
        choices=("text", "openrpc", "thrift", "markdown"),
        default="text",
        help="text (default), an OpenRPC document, the Thrift IDL, or Markdown",
    )
    methods.set_defaults(run=cmd_methods)
    helper = sub.add_parser("help", parents=[common], help="describe a method (or list them all)")
    helper.add_argument("method", nargs="?", help="e.g. resolve")
    helper.set_defaults(run=cmd_help)
    call = sub.add_parser("call", parents=[common], help="call one method", description="Call one method.")
    call.add_argument("method", help="e.g. resolve, mx_lookup, fetch_url")
    call.add_argument("args", nargs="*", help="positional arguments (JSON values or plain strings)")
    call.add_argument("-p", "--param", action="append", metavar="NAME=VALUE", help="a named argument (repeatable)")
    call.set_defaults(run=cmd_call)
    bench = sub.add_parser("bench", help="compare the transports: the gateway against each bare library")
    from gateway.bench import add_arguments as bench_arguments

    bench_arguments(bench)
    multi = sub.add_parser("multicall", parents=[common], help="run JSON-lines calls concurrently")
    multi.add_argument("file", nargs="?", help="file of JSON lines (default: standard input)")
    multi.set_defaults(run=cmd_multicall)
    serve = sub.add_parser(
        "mcp",
        parents=[common],
        help="serve MCP on stdio for an AI agent, forwarding each tool call to the gateway at --url",
        description="An MCP server on standard input and output (for an agent's command setting) whose tools "
        "call the gateway at --url, over that URL's transport.",
    )
    serve.set_defaults(run=cmd_mcp)
    completion = sub.add_parser("completion", help='print a completion script: eval "$(netops completion bash)"')
    completion.add_argument("shell", choices=("bash", "zsh"))
    return parser


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    """A bash or zsh completion script for the commands and options of ``parser``."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    words = {
        name: sorted({o for a in cmd._actions for o in a.option_strings if o.startswith("--")})
        for name, cmd in sub.choices.items()
    }
    cases = "\n".join(f'    {name}) opts="{" ".join(opts)}" ;;' for name, opts in words.items())
    body = f"""_netops() {{
  local cur="${{COMP_WORDS[COMP_CWORD]}}" command="" opts="" word
  for word in "${{COMP_WORDS[@]:1:COMP_CWORD-1}}"; do
    case "$word" in -*) ;; *) command="$word"; break ;; esac
  done
  case "$command" in
{cases}
    *) COMPREPLY=($(compgen -W "{" ".join(words)}" -- "$cur")); return ;;
  esac
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}}
complete -F _netops netops
"""
    return ("autoload -U +X bashcompinit && bashcompinit\n" + body) if shell == "zsh" else body


def _check_url(url: str) -> None:
    """A usage error, with a hint, for a URL no transport speaks (``http://…`` is the commonest)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        where = rest.split("/", 1)[0] if sep else url
        raise UsageError(
            f"--url {url!r}: use {'|'.join(SCHEMES)}://host:port, e.g. jsonrpc://{where or '127.0.0.1:7002'}"
        )
    if "/" in rest.strip("/"):
        raise UsageError(f"--url {url!r}: give host:port only, e.g. {scheme}://{rest.split('/', 1)[0]}")


def _credentials(args: argparse.Namespace) -> tuple[str | None, ssl.SSLContext | None]:
    """The token (from --token-file or $NETOPS_TOKEN) and TLS context the flags ask for."""
    token = os.environ.get("NETOPS_TOKEN") or None
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as fh:
            token = fh.readline().strip() or None
    tls = None
    if args.tls or args.ca_file or args.cert:
        try:
            tls = tls_context(args.ca_file, args.cert, args.key)
        except ssl.SSLError as exc:
            raise UsageError(f"cannot load the TLS files: {exc}") from None
    return token, tls


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the ``netops`` command; returns the exit status."""
    out, err = out or sys.stdout, err or sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "bench":
        from gateway.bench import run_and_report

        given = list(sys.argv[1:] if argv is None else argv)
        args.command_line = "netops " + shlex.join(given[given.index("bench") :])  # for the report
        return run_and_report(args)
    if args.command == "completion":
        out.write(completion_script(parser, args.shell))
        return 0
    style = Style(err)
    try:
        _check_url(args.url)
        token, tls = _credentials(args)
        with connect(args.url, timeout=args.timeout, token=token, tls=tls) as client:
            return args.run(client, args, out, Style(out))
    except UsageError as exc:
        err.write(f"netops: {exc}\n")
        return EXIT_USAGE
    except GatewayError as exc:
        err.write(style.bad(f"error: {exc}") + "\n")
        return EXIT_UNREACHABLE if isinstance(exc, GatewayUnreachable) else EXIT_ERROR
    except OSError as exc:
        err.write(style.bad(f"error: {exc}") + "\n")
        return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
