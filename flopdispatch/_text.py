"""Text made safe to print: below every module that writes to a terminal (report, comm, cli)."""
import unicodedata


def terminal_safe(text) -> str:
    """`text` with every character a terminal could act on written as a visible escape.

    ESC and the other C0/C1 controls (so no ANSI/OSC sequence reaches the terminal), DEL, bidi
    overrides and other format characters, line separators and lone surrogates become ``\x1b``,
    ``\u202e``...: whatever ``str.isprintable`` refuses, except plain spaces (Unicode Zs)."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or unicodedata.category(ch) == "Zs" else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    o = ord(ch)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"
