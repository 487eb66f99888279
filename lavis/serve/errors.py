"""The server's request errors: the base of the serving flow.

A :class:`RequestError` is what a client did wrong (or, for 503, what it may retry), carried
to the HTTP answer as OpenAI's error body `{"error": {"message", "type", "param", "code"}}`,
`param` naming the request field at fault (`messages[1].content[0].image_url.url`).
"""

from lavis.chat.errors import ChatError


class RequestError(ChatError):
    """A request the server refuses: HTTP `status`, OpenAI's error `type`, the field (`param`), a `code`."""

    def __init__(
        self, message, param=None, code="invalid_value", status=400, type="invalid_request_error", headers=None
    ):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = status
        self.type = type
        self.headers = headers or {}

    def body(self):
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
