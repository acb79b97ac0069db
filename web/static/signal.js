// Signal is one signaling WebSocket (see signaling/PROTOCOL.md): JSON
// frames with a `type` field. It reports messages and the close once.

export function signalURL() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws`;
}

export class Signal {
  constructor(url, { onOpen, onMessage, onClose } = {}) {
    this.closed = false;
    this.ws = new WebSocket(url);
    this.ws.addEventListener('open', () => { if (onOpen) onOpen(); });
    this.ws.addEventListener('message', (ev) => {
      if (typeof ev.data !== 'string') return;
      let msg;
      try { msg = JSON.parse(ev.data); } catch (_) { return; }
      if (msg && typeof msg.type === 'string' && onMessage) onMessage(msg);
    });
    const done = (ev) => {
      if (this.closed) return;
      this.closed = true;
      if (onClose) onClose(ev && typeof ev.code === 'number' ? ev.code : 1006);
    };
    this.ws.addEventListener('close', done);
    this.ws.addEventListener('error', () => {
      // An error is always followed by close; make sure we report it even
      // if the socket never opened.
      if (this.ws.readyState === WebSocket.CLOSED) done();
    });
  }

  get open() { return this.ws.readyState === WebSocket.OPEN; }

  send(msg) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  // close closes the socket without reporting it to onClose.
  close() {
    this.closed = true;
    try { this.ws.close(1000); } catch (_) { /* ignore */ }
  }
}
