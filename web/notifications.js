// Notifications: the unread badge in the header, the list (newest first,
// paged), marking one or all read, and new ones arriving live.

import { api, withQuery } from './api.js';
import { $, h, timeEl, toast } from './dom.js';

const PAGE = 20;

export class Notifications {
  constructor(ctx) {
    this.ctx = ctx;
    this.items = new Map();
    this.nodes = new Map();
    this.unread = 0;
    this.cursor = null;
    this.done = false;
    this.loading = false;
    this.generation = 0;
    this.listeners = [];
    this.listen($('notifications-all-read'), 'click', () => this.markAll());
    this.listen($('more-notifications'), 'click', () => this.loadMore());
  }

  listen(el, type, fn) {
    el.addEventListener(type, fn);
    this.listeners.push(() => el.removeEventListener(type, fn));
  }

  destroy() {
    for (const off of this.listeners) off();
    this.generation += 1;
    $('notification-list').replaceChildren();
    this.unread = 0;
    this.renderBadge();
  }

  async load() {
    this.generation += 1;
    this.items.clear();
    this.nodes.clear();
    this.cursor = null;
    this.done = false;
    this.loading = false;
    $('notification-list').replaceChildren();
    await this.loadMore();
  }

  async loadMore() {
    if (this.loading || this.done) return;
    this.loading = true;
    const generation = this.generation;
    $('more-notifications').disabled = true;
    try {
      const page = await api('GET', withQuery('/api/notifications', { limit: PAGE, cursor: this.cursor }));
      if (generation !== this.generation) return;
      for (const n of page.items) {
        if (this.items.has(n.id)) continue;
        this.items.set(n.id, n);
        const li = this.build(n);
        this.nodes.set(n.id, li);
        $('notification-list').append(li);
      }
      this.unread = page.unread_count;
      this.cursor = page.next_cursor;
      this.done = !page.next_cursor;
    } catch (e) {
      if (generation === this.generation) toast(`Could not load notifications: ${e.message}`);
    } finally {
      if (generation === this.generation) {
        this.loading = false;
        $('more-notifications').disabled = false;
        this.render();
      }
    }
  }

  render() {
    $('more-notifications').hidden = this.done;
    $('notifications-empty').hidden = this.items.size > 0 || !this.done;
    $('notifications-all-read').disabled = this.unread === 0;
    this.renderBadge();
  }

  renderBadge() {
    const badge = $('notifications-badge');
    badge.hidden = this.unread === 0;
    badge.textContent = this.unread > 99 ? '99+' : String(this.unread);
    $('nav-notifications').setAttribute('aria-label', this.unread ? `Notifications, ${this.unread} unread` : 'Notifications');
  }

  describe(n) {
    const who = n.actor ? n.actor.nickname : 'Someone';
    switch (n.kind) {
      case 'comment':
        return [who, ' commented on your post'];
      case 'reaction':
        return [who, n.comment_id ? ' reacted to your comment' : ' reacted to your post'];
      case 'message':
        return [who, ' sent you a message'];
      case 'report':
        return [who, ': a report needs attention'];
      case 'moderation_request':
        return [who, ' asks to become a moderator'];
      default:
        return [who, `: ${n.kind}`];
    }
  }

  build(n) {
    const [who, what] = this.describe(n);
    const actions = h('div', { class: 'actions' });
    if (n.post_id) {
      actions.append(h('a', { href: `#/post/${n.post_id}`, class: 'button secondary small', onclick: () => this.markOne(n.id) }, 'Open post'));
    }
    if (n.kind === 'message' && n.actor) {
      actions.append(h('button', {
        type: 'button', class: 'secondary small',
        onclick: () => {
          this.markOne(n.id);
          this.ctx.openConversation(n.actor.id);
        },
      }, `Reply to ${n.actor.nickname}`));
    }
    const li = h('li', { class: 'notification', dataset: { notificationId: n.id } },
      h('p', { class: 'notification-text' }, h('strong', { text: who }), what),
      timeEl(n.created_at),
      actions);
    this.fill(li, n);
    return li;
  }

  fill(li, n) {
    li.classList.toggle('unread', !n.read);
    const actions = li.querySelector('.actions');
    let mark = actions.querySelector('.mark-read');
    if (!n.read && !mark) {
      mark = h('button', { type: 'button', class: 'secondary small mark-read', onclick: () => this.markOne(n.id) }, 'Mark as read');
      actions.append(mark);
    } else if (n.read && mark) {
      if (document.activeElement === mark) $('notifications-title').focus();
      mark.remove();
    }
    let state = li.querySelector('.state');
    if (!state) {
      state = h('span', { class: 'visually-hidden state' });
      li.prepend(state);
    }
    state.textContent = n.read ? '' : 'Unread: ';
  }

  async markOne(id) {
    const n = this.items.get(id);
    if (!n || n.read) return;
    n.read = true;
    this.unread = Math.max(0, this.unread - 1);
    this.fill(this.nodes.get(id), n);
    this.render();
    try {
      await api('POST', '/api/notifications/read', { ids: [id] });
    } catch (e) {
      toast(`Could not mark it read: ${e.message}`);
    }
  }

  async markAll() {
    const button = $('notifications-all-read');
    button.disabled = true;
    try {
      await api('POST', '/api/notifications/read', { all: true });
      for (const [id, n] of this.items) {
        n.read = true;
        this.fill(this.nodes.get(id), n);
      }
      this.unread = 0;
    } catch (e) {
      toast(`Could not mark them read: ${e.message}`);
    } finally {
      this.render();
    }
  }

  frame(type, data) {
    if (type !== 'notification.new' || this.items.has(data.id)) return;
    this.items.set(data.id, data);
    const li = this.build(data);
    li.classList.add('arrived');
    this.nodes.set(data.id, li);
    $('notification-list').prepend(li);
    if (!data.read) this.unread += 1;
    this.render();
  }
}
