// Private chat, beside the feed: the users list (online or not, unread
// counts, in the API's order: by last message, then by nickname), one open
// conversation (the last 10 messages, 10 older ones each time the reader
// scrolls to the top, one request at a time), sending, read marks and the
// typing indicator both ways.

import { api, withQuery } from './api.js';
import { $, h, timeEl, toast } from './dom.js';

const PAGE = 10;
/** Scrolled this close to the top of the messages: load older ones. */
const TOP_SLACK_PX = 48;
/** At most one page request this often, however fast the scroll. */
const PAGE_INTERVAL_MS = 300;
/** Re-send `active: true` this often while typing (the server forgets after 5 s). */
const TYPING_REFRESH_MS = 1500;
/** No keystroke for this long: stopped typing. */
const TYPING_IDLE_MS = 3000;
/** Hide a typing indicator that was never ended (the server ends it after 5 s). */
const TYPING_EXPIRE_MS = 7000;

export class Chat {
  constructor(ctx) {
    this.ctx = ctx;
    this.me = ctx.me;
    this.users = new Map();
    this.items = new Map();
    this.open = null;
    this.typingOut = null;
    this.typingIn = new Map();
    this.refreshTimer = null;
    this.listeners = [];
    this.wire();
  }

  listen(el, type, fn) {
    el.addEventListener(type, fn);
    this.listeners.push(() => el.removeEventListener(type, fn));
  }

  wire() {
    this.listen($('message-form'), 'submit', (e) => this.send(e));
    this.listen($('message-input'), 'input', () => this.typed());
    this.listen($('message-input'), 'keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        $('message-form').requestSubmit();
      }
    });
    this.listen($('message-input'), 'blur', () => this.stopTyping());
    this.listen($('message-scroller'), 'scroll', () => {
      if ($('message-scroller').scrollTop < TOP_SLACK_PX) this.requestOlder();
    });
    this.listen($('older-messages'), 'click', () => this.requestOlder());
    this.listen($('conversation-close'), 'click', () => this.close());
    this.listen($('conversation'), 'keydown', (e) => {
      if (e.key === 'Escape') this.close();
    });
  }

  destroy() {
    for (const off of this.listeners) off();
    clearTimeout(this.refreshTimer);
    for (const t of this.typingIn.values()) clearTimeout(t);
    if (this.typingOut) clearTimeout(this.typingOut.idle);
    if (this.open) clearTimeout(this.open.pageTimer);
    this.open = null;
    $('user-list').replaceChildren();
    $('message-list').replaceChildren();
    $('conversation').hidden = true;
    $('chat').classList.remove('in-conversation');
    $('chat-badge').hidden = true;
  }

  async load() {
    await this.loadUsers();
    if (this.open) await this.openConversation(this.open.id, { focus: false });
  }

  async loadUsers() {
    try {
      const list = await api('GET', '/api/users');
      const seen = new Set();
      for (const u of list) {
        seen.add(u.id);
        const known = this.users.get(u.id);
        this.users.set(u.id, { ...u, typing: known ? known.typing : false });
      }
      for (const id of [...this.users.keys()]) {
        if (!seen.has(id)) {
          this.users.delete(id);
          const li = this.items.get(id);
          if (li) li.remove();
          this.items.delete(id);
        }
      }
      this.renderUsers();
    } catch (e) {
      toast(`Could not load the users: ${e.message}`);
    }
  }

  /** Reloads the users a little later (a user we did not know about). */
  refreshSoon() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.loadUsers(), 300);
  }

  sorted() {
    return [...this.users.values()].sort((a, b) => {
      if (a.last_message_at && b.last_message_at) {
        if (a.last_message_at !== b.last_message_at) return a.last_message_at < b.last_message_at ? 1 : -1;
      } else if (a.last_message_at) {
        return -1;
      } else if (b.last_message_at) {
        return 1;
      }
      const x = a.nickname.toLowerCase();
      const y = b.nickname.toLowerCase();
      return x < y ? -1 : x > y ? 1 : 0;
    });
  }

  renderUsers() {
    const list = $('user-list');
    const focused = document.activeElement;
    const order = this.sorted();
    for (const u of order) this.renderUser(u);
    const current = [...list.children];
    const wanted = order.map((u) => this.items.get(u.id));
    if (current.length !== wanted.length || current.some((li, i) => li !== wanted[i])) {
      list.append(...wanted);
      if (focused && list.contains(focused) && document.activeElement !== focused) focused.focus();
    }
    $('users-empty').hidden = order.length > 0;
    const unread = order.reduce((n, u) => n + u.unread, 0);
    $('chat-badge').hidden = unread === 0;
    $('chat-badge').textContent = String(unread);
    $('nav-chat').setAttribute('aria-label', unread ? `Chat, ${unread} unread` : 'Chat');
  }

  renderUser(u) {
    let li = this.items.get(u.id);
    if (!li) {
      li = h('li', {}, h('button', {
        type: 'button', class: 'user', dataset: { userId: u.id },
        onclick: () => this.openConversation(u.id),
      }));
      this.items.set(u.id, li);
    }
    const button = li.firstChild;
    const status = u.typing ? 'typing…' : u.online ? 'online' : 'offline';
    button.classList.toggle('online', u.online);
    button.classList.toggle('has-unread', u.unread > 0);
    if (this.open && this.open.id === u.id) button.setAttribute('aria-current', 'true');
    else button.removeAttribute('aria-current');
    const children = [
      h('span', { class: `presence ${u.online ? 'on' : 'off'}`, 'aria-hidden': 'true' }),
      h('span', { class: 'user-text' },
        h('span', { class: 'user-name', text: u.nickname }),
        h('span', { class: u.typing ? 'user-status typing-now' : 'user-status', text: status })),
    ];
    if (u.unread > 0) {
      children.push(h('span', { class: 'badge' }, String(u.unread), h('span', { class: 'visually-hidden', text: ' unread' })));
    }
    button.replaceChildren(...children);
  }

  unreadOf(id) {
    const u = this.users.get(id);
    return u ? u.unread : 0;
  }

  // ---- one conversation ----

  async openConversation(id, { focus = true } = {}) {
    const user = this.users.get(id);
    if (!user) return;
    if (this.open && this.open.id !== id) this.stopTyping();
    if (this.open) clearTimeout(this.open.pageTimer);
    this.open = { id, messages: new Map(), cursor: null, done: false, loading: false, lastPage: 0, pageTimer: null };
    const open = this.open;
    if (focus) this.ctx.showChat();
    $('conversation').hidden = false;
    $('chat').classList.add('in-conversation');
    $('conversation-title').textContent = user.nickname;
    $('message-label').textContent = `Message to ${user.nickname}`;
    $('message-scroller').setAttribute('aria-label', `Messages with ${user.nickname}`);
    $('message-list').setAttribute('aria-label', `Messages with ${user.nickname}`);
    $('message-list').replaceChildren();
    $('message-error').textContent = '';
    $('older-messages').hidden = true;
    $('conversation-start').hidden = true;
    this.renderTyping();
    this.renderUsers();
    if (focus) $('message-input').focus();
    await this.loadOlder(open);
    if (open !== this.open) return;
    this.scrollToEnd();
    this.markRead();
  }

  close() {
    this.stopTyping();
    if (this.open) clearTimeout(this.open.pageTimer);
    const id = this.open && this.open.id;
    this.open = null;
    $('conversation').hidden = true;
    $('chat').classList.remove('in-conversation');
    $('message-list').replaceChildren();
    this.renderUsers();
    const li = id && this.items.get(id);
    if (li) li.firstChild.focus();
  }

  /** Older messages on a scroll to the top: one request at a time, throttled. */
  requestOlder() {
    const open = this.open;
    if (!open || open.loading || open.done || open.pageTimer) return;
    const wait = open.lastPage + PAGE_INTERVAL_MS - Date.now();
    if (wait > 0) {
      open.pageTimer = setTimeout(() => {
        open.pageTimer = null;
        if ($('message-scroller').scrollTop < TOP_SLACK_PX) this.requestOlder();
      }, wait);
      return;
    }
    this.loadOlder(open);
  }

  async loadOlder(open) {
    if (open.loading || open.done) return;
    open.loading = true;
    $('older-messages').disabled = true;
    const scroller = $('message-scroller');
    try {
      const page = await api('GET', withQuery(`/api/conversations/${open.id}/messages`, { limit: PAGE, cursor: open.cursor }));
      if (open !== this.open) return;
      const before = scroller.scrollHeight - scroller.scrollTop;
      const nodes = [];
      for (const m of page.items.slice().reverse()) {
        if (open.messages.has(m.id)) continue;
        open.messages.set(m.id, m);
        nodes.push(this.buildMessage(m));
      }
      $('message-list').prepend(...nodes);
      // Keep what the reader was looking at where it was.
      scroller.scrollTop = scroller.scrollHeight - before;
      open.cursor = page.next_cursor;
      open.done = !page.next_cursor;
    } catch (e) {
      if (open === this.open) toast(`Could not load messages: ${e.message}`);
    } finally {
      open.loading = false;
      open.lastPage = Date.now();
      if (open === this.open) {
        $('older-messages').hidden = open.done;
        $('older-messages').disabled = false;
        $('conversation-start').hidden = !open.done;
      }
    }
  }

  buildMessage(m) {
    const mine = m.from.id === this.me.id;
    return h('li', { class: mine ? 'message mine' : 'message theirs', dataset: { messageId: m.id } },
      h('p', { class: 'message-meta' }, h('span', { class: 'sender', text: m.from.nickname }), ' ', timeEl(m.sent_at)),
      h('p', { class: 'message-text', text: m.content }));
  }

  nearEnd() {
    const s = $('message-scroller');
    return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }

  scrollToEnd() {
    const s = $('message-scroller');
    s.scrollTop = s.scrollHeight;
  }

  appendMessage(m) {
    const open = this.open;
    if (!open || open.messages.has(m.id)) return;
    const stick = this.nearEnd() || m.from.id === this.me.id;
    open.messages.set(m.id, m);
    $('message-list').append(this.buildMessage(m));
    if (stick) this.scrollToEnd();
  }

  /** Marks the open conversation read up to the newest message from them. */
  async markRead() {
    const open = this.open;
    if (!open) return;
    const user = this.users.get(open.id);
    let newest = null;
    for (const m of open.messages.values()) {
      if (m.from.id === open.id && (!newest || m.sent_at >= newest.sent_at)) newest = m;
    }
    if (!newest || !user) return;
    if (user.unread === 0 && newest.read_at) return;
    if (open.reading) {
      open.readAgain = true;
      return;
    }
    open.reading = true;
    user.unread = 0;
    newest.read_at = newest.read_at || new Date().toISOString();
    this.renderUsers();
    try {
      await api('POST', `/api/conversations/${open.id}/read`, { up_to: newest.id });
    } catch (e) {
      if (e.status !== 404) toast(`Could not mark the messages read: ${e.message}`);
    } finally {
      open.reading = false;
      if (open.readAgain && open === this.open) {
        open.readAgain = false;
        this.markRead();
      }
    }
  }

  /**
   * Sends what is in the box and empties it at once, so the next message can
   * be typed; sends go out one after another, in order.
   */
  send(event) {
    event.preventDefault();
    const open = this.open;
    if (!open) return;
    const input = $('message-input');
    const content = input.value;
    if (!content.trim()) return;
    input.value = '';
    $('message-error').textContent = '';
    this.stopTyping();
    this.sending = (this.sending || Promise.resolve()).then(async () => {
      try {
        const m = await api('POST', `/api/conversations/${open.id}/messages`, { content });
        this.messageArrived(m);
      } catch (e) {
        if (open !== this.open) return;
        $('message-error').textContent = (e.fields && e.fields.content) || e.message;
        if (!input.value) input.value = content;
      }
    });
  }

  /** A message from the API or the feed, shown and counted once. */
  messageArrived(m) {
    const mine = m.from.id === this.me.id;
    const other = mine ? m.to : m.from.id;
    let user = this.users.get(other);
    if (!user) {
      user = { id: other, nickname: mine ? '…' : m.from.nickname, online: !mine, last_message_at: null, unread: 0, typing: false };
      this.users.set(other, user);
      this.refreshSoon();
    }
    const isOpen = this.open && this.open.id === other;
    const known = isOpen && this.open.messages.has(m.id);
    if (!user.last_message_at || m.sent_at > user.last_message_at) user.last_message_at = m.sent_at;
    if (!mine) this.setTyping(other, false);
    if (isOpen) {
      if (!known) this.appendMessage(m);
      if (!mine) this.markRead();
    } else if (!mine && !known && !m.read_at) {
      if (!this.counted) this.counted = new Set();
      if (!this.counted.has(m.id)) {
        this.counted.add(m.id);
        user.unread += 1;
      }
    }
    this.renderUsers();
  }

  // ---- typing ----

  typed() {
    const open = this.open;
    if (!open) return;
    if (!$('message-input').value.trim()) {
      this.stopTyping();
      return;
    }
    const now = Date.now();
    const t = this.typingOut;
    if (!t || t.to !== open.id || now - t.sent > TYPING_REFRESH_MS) {
      if (this.ctx.live.send({ type: 'typing', to: open.id, active: true })) {
        if (t) clearTimeout(t.idle);
        this.typingOut = { to: open.id, sent: now, idle: null };
      }
    }
    if (this.typingOut) {
      clearTimeout(this.typingOut.idle);
      this.typingOut.idle = setTimeout(() => this.stopTyping(), TYPING_IDLE_MS);
    }
  }

  stopTyping() {
    const t = this.typingOut;
    if (!t) return;
    clearTimeout(t.idle);
    this.typingOut = null;
    this.ctx.live.send({ type: 'typing', to: t.to, active: false });
  }

  setTyping(id, active) {
    clearTimeout(this.typingIn.get(id));
    this.typingIn.delete(id);
    if (active) this.typingIn.set(id, setTimeout(() => this.setTyping(id, false), TYPING_EXPIRE_MS));
    const user = this.users.get(id);
    if (user && user.typing !== active) {
      user.typing = active;
      this.renderUser(user);
    }
    this.renderTyping();
  }

  renderTyping() {
    const el = $('typing-indicator');
    const user = this.open && this.users.get(this.open.id);
    const active = Boolean(user && user.typing);
    if (active) $('typing-text').textContent = `${user.nickname} is typing`;
    el.classList.toggle('active', active);
  }

  // ---- live frames ----

  frame(type, data) {
    switch (type) {
      case 'message.new':
        this.messageArrived(data);
        break;
      case 'message.read':
        if (data.reader === this.me.id) {
          const user = this.users.get(data.other);
          if (user && user.unread) {
            user.unread = 0;
            this.renderUsers();
          }
        }
        break;
      case 'presence': {
        const user = this.users.get(data.user_id);
        if (data.user_id === this.me.id) return;
        if (!user) {
          this.refreshSoon();
          return;
        }
        user.online = data.online;
        if (!data.online) this.setTyping(user.id, false);
        this.renderUser(user);
        break;
      }
      case 'typing':
        if (data.from && data.from.id !== this.me.id) this.setTyping(data.from.id, Boolean(data.active));
        break;
      default:
    }
  }
}
