"""The page's words in English and Simplified Chinese, and which one a request gets."""

from __future__ import annotations

LANGUAGES = ("en", "zh")
DEFAULT = "en"

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "html_lang": "en",
        "title": "Request #{number}",
        "status": "Status",
        "status.new": "Received",
        "status.open": "In progress",
        "status.pending": "Waiting for your answer",
        "status.solved": "Solved",
        "status.closed": "Closed",
        "conversation": "Conversation",
        "you": "You",
        "support": "Support",
        "files": "Files",
        "add": "Add a message",
        "message": "Your message",
        "attach": "Attach one file (up to {size})",
        "send": "Send",
        "sent": "Thank you, your message was received. It appears here in a moment.",
        "closed": "This request was closed too long ago to continue here. Write to us again to open a new one.",
        "switch": "中文",
        "gone.title": "Page not found",
        "gone.text": "This link does not open a request. Links end after a while; the latest message "
                     "from us carries a current one.",
        "refused.title": "Message not sent",
        "refused.403": "The form was too old or came from elsewhere. Reload the page and send it again.",
        "refused.400": "Write a message before sending.",
        "refused.413": "The message or its file is too large (files up to {size}).",
        "refused.429": "Too many messages in a short time. Please wait a while and send again.",
        "refused.409": "This request was closed too long ago to continue here.",
        "back": "Back to the request",
    },
    "zh": {
        "html_lang": "zh-CN",
        "title": "工单 #{number}",
        "status": "状态",
        "status.new": "已收到",
        "status.open": "处理中",
        "status.pending": "等待您的回复",
        "status.solved": "已解决",
        "status.closed": "已关闭",
        "conversation": "对话记录",
        "you": "您",
        "support": "客服",
        "files": "附件",
        "add": "补充信息",
        "message": "您的留言",
        "attach": "添加一个附件（不超过 {size}）",
        "send": "发送",
        "sent": "谢谢，我们已收到您的留言，稍后会显示在这里。",
        "closed": "此工单已关闭较久，无法在此继续。请重新联系我们以创建新的工单。",
        "switch": "English",
        "gone.title": "页面不存在",
        "gone.text": "此链接无法打开工单。链接会在一段时间后失效，我们最新的回复中附有可用的链接。",
        "refused.title": "留言未发送",
        "refused.403": "表单已过期或来源不正确。请刷新页面后重新发送。",
        "refused.400": "请先填写留言内容。",
        "refused.413": "留言或附件过大（附件不超过 {size}）。",
        "refused.429": "短时间内留言过多，请稍后再试。",
        "refused.409": "此工单已关闭较久，无法在此继续。",
        "back": "返回工单",
    },
}


def _primary(tag: str) -> str:
    return tag.strip().lower().split("-", 1)[0]


def choose(asked: str | None, accept_language: str) -> str:
    """``?lang=`` when it names one of ours, else the best of Accept-Language (RFC 9110 §12.5.4)."""
    if asked in LANGUAGES:
        return asked
    ranked = []
    for n, item in enumerate(accept_language.split(",")[:20]):
        tag, _, params = item.partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0 and _primary(tag) in LANGUAGES:
            ranked.append((-q, n, _primary(tag)))
    return min(ranked)[2] if ranked else DEFAULT


def other(lang: str) -> str:
    """The language the switch link offers."""
    return "zh" if lang == "en" else "en"


def size_text(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB" if size >= 1024 * 1024 else f"{max(size // 1024, 1)} KiB"
