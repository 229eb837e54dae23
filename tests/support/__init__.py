"""What tests share: a fake clock and sleeps (``clock``), loopback servers (``servers``) and
one way to wait for something happening in the background (``waiting``)."""
