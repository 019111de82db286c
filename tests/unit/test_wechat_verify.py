"""Safe-mode decryption with one cipher per account key: every push decrypts on its own."""

import pytest
from wechatpy.crypto import WeChatCrypto

from connectors.push import Reject
from connectors.wechat.verify import Keys, decrypt

ACCOUNTS = [("tok-a", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wxaaaaaaaaaaaaaaaa"),
            ("tok-b", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wx49f0ab532d5d035a")]


def _encrypt(token: str, aes_key: str, appid: str, plaintext: str) -> str:
    wrapped = WeChatCrypto(token, aes_key, appid).encrypt_message(plaintext, "1", "1700000000")
    return wrapped.split("<Encrypt><![CDATA[")[1].split("]]>")[0]


def test_pushes_decrypt_alike_in_any_order_and_across_accounts():
    # A cipher that carried CBC state from one push to the next would garble all but the first.
    pushes = [(Keys.from_settings({"token": t, "mode": "safe", "aes_key": k, "appid": a}),
               _encrypt(t, k, a, f"<xml><Content><![CDATA[{a} 消息 {i}]]></Content></xml>" * (i + 1)),
               f"<xml><Content><![CDATA[{a} 消息 {i}]]></Content></xml>" * (i + 1))
              for i in range(3) for t, k, a in ACCOUNTS]
    for keys, encrypt, plaintext in pushes + pushes[::-1] + pushes:
        assert decrypt(keys, encrypt) == plaintext


def test_refusals_are_unchanged():
    token, aes_key, appid = ACCOUNTS[0]
    keys = Keys.from_settings({"token": token, "mode": "safe", "aes_key": aes_key, "appid": appid})
    other = _encrypt(token, aes_key, "wxsomeoneelse00000", "<xml/>")
    with pytest.raises(Reject) as refused:
        decrypt(keys, other)
    assert (refused.value.status, refused.value.reason) == (401, "wrong_appid")
    for bad in ("not base64!", "QUJD", ""):  # bad padding, not whole AES blocks, nothing
        with pytest.raises(Reject) as refused:
            decrypt(keys, bad)
        assert (refused.value.status, refused.value.reason) == (400, "undecryptable")
    assert decrypt(keys, _encrypt(token, aes_key, appid, "<xml/>")) == "<xml/>"
