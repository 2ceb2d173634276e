// The live feed: one WebSocket (`/api/ws`, authenticated by the session
// cookie). It remembers the cursor of the last frame; when the socket drops
// (network, gateway restart, 4008 slow consumer) it reconnects with backoff
// and `?cursor=C`, so the server replays what was missed. A `hello` with
// `resumed: false` tells the page to reload its views from REST.

import { api } from './api.js';

const SESSION_ENDED = 4001;
const BANNED = 4003;
const MAX_DELAY_MS = 8000;

export class Live {
  /**
   * `onHello(data, first)`: each `hello`; `onFrame(frame)`: every other
   * frame; `onStatus(connected, text)`; `onSessionEnded()`.
   */
  constructor({ onHello, onFrame, onStatus, onSessionEnded }) {
    this.onHello = onHello;
    this.onFrame = onFrame;
    this.onStatus = onStatus;
    this.onSessionEnded = onSessionEnded;
    this.cursor = null;
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.stopped = true;
    this.hellos = 0;
    this.onOnline = () => this.reconnectNow();
  }

  start() {
    this.stopped = false;
    window.addEventListener('online', this.onOnline);
    this.connect();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    clearTimeout(this.timer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000, 'bye');
    }
  }

  /** Sends a client frame when the socket is open; returns whether it did. */
  send(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  url() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const query = this.cursor ? `?cursor=${encodeURIComponent(this.cursor)}` : '';
    return `${scheme}//${location.host}/api/ws${query}`;
  }

  connect() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch (e) {
      this.scheduleReconnect(false);
      return;
    }
    this.ws = ws;
    let greeted = false;
    ws.onmessage = (event) => {
      if (this.ws !== ws) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (frame.type === 'hello') {
        greeted = true;
        this.attempt = 0;
        const first = this.hellos === 0;
        this.hellos += 1;
        // Where a fresh socket starts; a resumed one keeps its own cursor
        // until the replayed frames move it.
        if (!frame.data.resumed && frame.cursor) this.cursor = frame.cursor;
        this.onStatus(true, '');
        this.onHello(frame.data, first);
        return;
      }
      try {
        this.onFrame(frame);
      } catch (e) {
        console.error('live frame', frame.type, e);
      }
      if (frame.cursor) this.cursor = frame.cursor;
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (event.code === SESSION_ENDED) {
        this.onSessionEnded();
        return;
      }
      if (event.code === BANNED) {
        this.onStatus(false, 'Your account is banned for now. The live feed will retry.');
        this.attempt = Math.max(this.attempt, 4);
      } else {
        this.onStatus(false, 'Connection lost. Reconnecting…');
      }
      this.scheduleReconnect(greeted);
    };
  }

  /**
   * Waits (0.5 s, 1 s, 2 s … 8 s, with jitter) and connects again. A socket
   * refused before its hello may mean the session ended: ask the API.
   */
  scheduleReconnect(greeted) {
    if (this.stopped) return;
    const delay = Math.min(MAX_DELAY_MS, 500 * 2 ** this.attempt) * (0.75 + Math.random() / 2);
    this.attempt = Math.min(this.attempt + 1, 8);
    clearTimeout(this.timer);
    this.timer = setTimeout(async () => {
      if (this.stopped) return;
      if (!greeted) {
        try {
          await api('GET', '/api/auth/me', undefined, { auth: false, retries: 0 });
        } catch (e) {
          if (e.status === 401) {
            this.onSessionEnded();
            return;
          }
        }
      }
      this.connect();
    }, delay);
  }

  reconnectNow() {
    if (this.stopped || this.ws) return;
    this.attempt = 0;
    this.connect();
  }
}
