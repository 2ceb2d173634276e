// The feed (posts newest first, infinite scroll, filters, new post) and the
// post view (one post, its comments, a comment form). Live frames keep both
// current: post.new / post.updated / post.deleted, comment.new,
// reaction.updated. Everything shown is deduplicated by id.

import { api, withQuery } from './api.js';
import { $, clearErrors, h, sel, showErrors, timeEl, toast } from './dom.js';

const PAGE = 20;
const COMMENT_PAGE = 50;

const COMPOSE = {
  fields: {
    title: { error: 'compose-title-error', input: 'compose-post-title' },
    content: { error: 'compose-content-error', input: 'compose-content' },
    categories: { error: 'compose-categories-error' },
  },
  general: 'compose-error',
};
const COMMENT = {
  fields: { content: { error: 'comment-content-error', input: 'comment-content' } },
  general: 'comment-content-error',
};

export class Feed {
  constructor(ctx) {
    this.ctx = ctx;
    this.me = ctx.me;
    this.categories = [];
    /** Latest known state of every post seen, by id. */
    this.posts = new Map();
    /** Cards in the feed list, by post id. */
    this.cards = new Map();
    this.cursor = null;
    this.done = false;
    this.loading = false;
    this.generation = 0;
    this.seenComments = new Set();
    /** The open post: { id, comments: Map, cursor, done, loading }. */
    this.open = null;
    this.listeners = [];
    this.wire();
  }

  listen(el, type, fn) {
    el.addEventListener(type, fn);
    this.listeners.push(() => el.removeEventListener(type, fn));
  }

  wire() {
    this.listen($('compose-toggle'), 'click', () => this.toggleCompose());
    this.listen($('compose-cancel'), 'click', () => this.toggleCompose(false));
    this.listen($('compose-form'), 'submit', (e) => this.createPost(e));
    this.listen($('filters'), 'change', () => this.reload());
    this.listen($('filters'), 'submit', (e) => e.preventDefault());
    this.listen($('more-posts'), 'click', () => this.loadMore());
    this.listen($('more-comments'), 'click', () => this.loadComments());
    this.listen($('comment-form'), 'submit', (e) => this.addComment(e));
    this.observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) this.loadMore();
    }, { rootMargin: '0px 0px 400px 0px' });
    this.observer.observe($('more-posts'));
  }

  destroy() {
    this.observer.disconnect();
    for (const off of this.listeners) off();
    this.generation += 1;
    $('post-list').replaceChildren();
    $('comment-list').replaceChildren();
    $('post-holder').replaceChildren();
    $('compose-categories').replaceChildren();
    const select = $('filter-category');
    select.replaceChildren(select.options[0]);
    $('filters').reset();
    this.toggleCompose(false);
  }

  /** Loads the categories and the first page (again, after a lost feed). */
  async load() {
    if (!this.categories.length) {
      try {
        this.categories = await api('GET', '/api/categories');
        this.renderCategories();
      } catch (e) {
        toast(`Could not load the categories: ${e.message}`);
      }
    }
    await this.reload();
    if (this.open) await this.showPost(this.open.id, { keepFocus: true });
  }

  renderCategories() {
    const select = $('filter-category');
    const chips = $('compose-categories');
    for (const c of this.categories) {
      select.append(h('option', { value: c.slug, text: c.name }));
      const id = `compose-cat-${c.slug}`;
      chips.append(h('label', { class: 'chip', for: id },
        h('input', { type: 'checkbox', id, name: 'categories', value: c.slug }), ` ${c.name}`));
    }
  }

  categoryName(slug) {
    const c = this.categories.find((x) => x.slug === slug);
    return c ? c.name : slug;
  }

  filters() {
    return {
      category: $('filter-category').value,
      author: $('filter-mine').checked ? 'me' : '',
      reacted: $('filter-liked').checked ? 'like' : '',
    };
  }

  matches(post) {
    const f = this.filters();
    if (f.category && !post.categories.includes(f.category)) return false;
    if (f.author && post.author.id !== this.me.id) return false;
    if (f.reacted && post.my_reaction !== 'like') return false;
    return true;
  }

  /** Empties the list and loads its first page with the current filters. */
  async reload() {
    this.generation += 1;
    this.cursor = null;
    this.done = false;
    this.loading = false;
    this.cards.clear();
    $('post-list').replaceChildren();
    $('feed-empty').hidden = true;
    await this.loadMore();
  }

  /** The next page, one request at a time. */
  async loadMore() {
    if (this.loading || this.done) return;
    this.loading = true;
    const generation = this.generation;
    this.renderMore();
    try {
      const page = await api('GET', withQuery('/api/posts', { ...this.filters(), limit: PAGE, cursor: this.cursor }));
      if (generation !== this.generation) return;
      for (const post of page.items) {
        this.remember(post);
        if (!this.cards.has(post.id)) this.appendCard(post);
      }
      this.cursor = page.next_cursor;
      this.done = !page.next_cursor;
    } catch (e) {
      if (generation === this.generation) toast(`Could not load posts: ${e.message}`);
    } finally {
      if (generation === this.generation) {
        this.loading = false;
        this.renderMore();
      }
    }
    if (generation === this.generation && !this.done && this.moreInView()) this.loadMore();
  }

  moreInView() {
    const button = $('more-posts');
    if (button.hidden || !button.isConnected || $('feed-view').hidden) return false;
    const rect = button.getBoundingClientRect();
    return rect.height > 0 && rect.top < window.innerHeight + 400;
  }

  renderMore() {
    $('more-posts').hidden = this.done;
    $('more-posts').disabled = this.loading;
    $('more-posts').textContent = this.loading ? 'Loading posts…' : 'Load more posts';
    $('feed-end').hidden = !this.done || this.cards.size === 0;
    $('feed-empty').hidden = !(this.done && this.cards.size === 0);
  }

  /** Merges what the server says into what is known (my_reaction is mine). */
  remember(post, { reaction = true } = {}) {
    const known = this.posts.get(post.id);
    const merged = { ...known, ...post };
    if (!reaction && known) merged.my_reaction = known.my_reaction;
    if (!reaction && !known) merged.my_reaction = null;
    this.posts.set(post.id, merged);
    return merged;
  }

  appendCard(post) {
    const li = h('li', {}, this.buildPost(post, false));
    this.cards.set(post.id, li);
    $('post-list').append(li);
  }

  prependCard(post) {
    const li = h('li', { class: 'arrived' }, this.buildPost(post, false));
    this.cards.set(post.id, li);
    $('post-list').prepend(li);
    this.renderMore();
  }

  // ---- building and filling a post ----

  buildPost(post, full) {
    const titleId = `${full ? 'post-full' : 'post'}-${post.id}-title`;
    const title = full
      ? h('h2', { id: titleId, class: 'post-title' })
      : h('h2', { id: titleId, class: 'post-title' }, h('a', { href: `#/post/${post.id}`, class: 'title-link' }));
    const actions = h('div', { class: 'actions' }, this.reactionBar('post', post.id));
    if (!full) {
      actions.append(h('a', { href: `#/post/${post.id}`, class: 'comments-link', dataset: { role: 'comments' } }));
    } else if (post.author.id === this.me.id) {
      actions.append(
        h('button', { type: 'button', class: 'secondary small', onclick: () => this.editPost(post.id) }, 'Edit'),
        h('button', { type: 'button', class: 'danger small', onclick: (e) => this.confirmDelete(e.currentTarget, () => this.deletePost(post.id)) }, 'Delete'),
      );
    }
    const article = h('article', { class: full ? 'post card full' : 'post card', 'aria-labelledby': titleId, dataset: { postId: post.id } },
      title,
      h('p', { class: 'meta' }),
      h('ul', { class: 'tags', 'aria-label': 'Categories' }),
      h('div', { class: 'body' }, h('p', { class: full ? 'content' : 'content excerpt' })),
      actions,
    );
    this.fillPost(article, post);
    return article;
  }

  fillPost(article, post) {
    const full = article.classList.contains('full');
    const title = article.querySelector('.post-title');
    (full ? title : title.querySelector('a')).textContent = post.title;
    const meta = article.querySelector('.meta');
    meta.replaceChildren('by ', h('span', { class: 'author', text: post.author.nickname }), ' · ', timeEl(post.created_at));
    if (post.edited_at) meta.append(' · ', h('span', { class: 'edited', title: post.edited_at, text: 'edited' }));
    article.querySelector('.tags').replaceChildren(...post.categories.map((slug) => h('li', { class: 'tag', text: this.categoryName(slug) })));
    article.querySelector('.content').textContent = post.content;
    const link = article.querySelector('.comments-link');
    if (link) link.textContent = post.comment_count === 1 ? '1 comment' : `${post.comment_count} comments`;
    this.fillReactions(article, post);
  }

  /** Like and dislike buttons with their counts; `target` post or comment. */
  reactionBar(target, id) {
    const bar = h('div', { class: 'reactions' });
    for (const [reaction, label, icon] of [['like', 'Like', '▲'], ['dislike', 'Dislike', '▼']]) {
      bar.append(h('button', {
        type: 'button', class: `react ${reaction}`, 'aria-pressed': 'false', dataset: { reaction },
        onclick: (e) => this.react(target, id, reaction, e.currentTarget.parentElement),
      }, h('span', { class: 'icon', 'aria-hidden': 'true', text: icon }), ` ${label} `, h('span', { class: 'count', text: '0' })));
    }
    return bar;
  }

  fillReactions(el, item) {
    const bar = el.querySelector(':scope > .actions > .reactions, :scope > .reactions');
    if (!bar) return;
    for (const button of bar.querySelectorAll('button.react')) {
      const r = button.dataset.reaction;
      button.querySelector('.count').textContent = String(r === 'like' ? item.likes : item.dislikes);
      button.setAttribute('aria-pressed', String(item.my_reaction === r));
    }
  }

  /**
   * One reaction request at a time per item. A press while one is under
   * way is not lost: the last such press is sent when it ends. The buttons
   * stay enabled (a disabled button loses the keyboard focus).
   */
  async react(target, id, reaction, bar) {
    const item = target === 'post' ? this.posts.get(id) : this.open && this.open.comments.get(id);
    if (!item) return;
    if (bar.getAttribute('aria-busy') === 'true') {
      bar.dataset.pending = reaction;
      return;
    }
    const next = item.my_reaction === reaction ? null : reaction;
    bar.setAttribute('aria-busy', 'true');
    try {
      const state = await api('PUT', `/api/${target}s/${id}/reaction`, { reaction: next });
      Object.assign(item, state);
      this.refresh(target, id);
    } catch (e) {
      toast(`Could not react: ${e.message}`);
    } finally {
      bar.removeAttribute('aria-busy');
      const pending = bar.dataset.pending;
      delete bar.dataset.pending;
      if (pending) this.react(target, id, pending, bar);
    }
  }

  /** Redraws every element that shows this post or comment. */
  refresh(target, id) {
    if (target === 'post') {
      const post = this.posts.get(id);
      if (!post) return;
      for (const article of document.querySelectorAll(`article.post[data-post-id="${sel(id)}"]`)) {
        // Not under the author's hands while being edited.
        if (!article.querySelector(':scope > form')) this.fillPost(article, post);
      }
    } else if (this.open) {
      const comment = this.open.comments.get(id);
      const el = document.querySelector(`article.comment[data-comment-id="${sel(id)}"]`);
      if (comment && el) this.fillComment(el, comment);
    }
  }

  confirmDelete(button, action) {
    const prompt = h('span', { class: 'confirm', role: 'group', 'aria-label': 'Confirm deletion' },
      'Delete for good? ',
      h('button', { type: 'button', class: 'danger small', onclick: () => action() }, 'Yes, delete'),
      h('button', { type: 'button', class: 'secondary small', onclick: () => { prompt.replaceWith(button); button.focus(); } }, 'Keep it'));
    button.replaceWith(prompt);
    prompt.querySelector('button').focus();
  }

  // ---- writing posts ----

  toggleCompose(force) {
    const form = $('compose-form');
    const open = force === undefined ? form.hidden : force;
    form.hidden = !open;
    $('compose-toggle').setAttribute('aria-expanded', String(open));
    if (open) {
      $('compose-post-title').focus();
    } else {
      form.reset();
      clearErrors(COMPOSE);
    }
  }

  async createPost(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const button = form.querySelector('button[type=submit]');
    if (button.disabled) return;
    button.disabled = true;
    clearErrors(COMPOSE);
    const body = {
      title: $('compose-post-title').value,
      content: $('compose-content').value,
      categories: [...form.querySelectorAll('input[name=categories]:checked')].map((i) => i.value),
    };
    try {
      const post = await api('POST', '/api/posts', body);
      const known = this.remember(post);
      if (this.matches(known) && !this.cards.has(post.id)) this.prependCard(known);
      this.toggleCompose(false);
      $('compose-toggle').focus();
      toast('Your post is published.');
    } catch (e) {
      showErrors(e, COMPOSE);
    } finally {
      button.disabled = false;
    }
  }

  editPost(id) {
    const post = this.posts.get(id);
    const article = document.querySelector(`#post-holder article.post[data-post-id="${sel(id)}"]`);
    if (!post || !article || article.querySelector('form')) return;
    const fields = {
      fields: {
        title: { error: 'edit-title-error', input: 'edit-title' },
        content: { error: 'edit-content-error', input: 'edit-content' },
        categories: { error: 'edit-categories-error' },
      },
      general: 'edit-error',
    };
    const chips = this.categories.map((c) => h('label', { class: 'chip', for: `edit-cat-${c.slug}` },
      h('input', { type: 'checkbox', id: `edit-cat-${c.slug}`, value: c.slug, checked: post.categories.includes(c.slug) }), ` ${c.name}`));
    const form = h('form', { class: 'edit', novalidate: true, 'aria-label': 'Edit post' },
      h('div', { class: 'field' }, h('label', { for: 'edit-title', text: 'Title' }),
        h('input', { id: 'edit-title', maxlength: 200, 'aria-describedby': 'edit-title-error' }),
        h('p', { class: 'field-error', id: 'edit-title-error' })),
      h('div', { class: 'field' }, h('label', { for: 'edit-content', text: 'Content' }),
        h('textarea', { id: 'edit-content', rows: 8, 'aria-describedby': 'edit-content-error' }),
        h('p', { class: 'field-error', id: 'edit-content-error' })),
      h('fieldset', { class: 'categories' }, h('legend', { text: 'Categories' }), h('div', { class: 'chips' }, chips),
        h('p', { class: 'field-error', id: 'edit-categories-error' })),
      h('p', { class: 'form-error', id: 'edit-error', role: 'alert' }),
      h('div', { class: 'buttons' },
        h('button', { type: 'submit', class: 'primary' }, 'Save'),
        h('button', { type: 'button', class: 'secondary', onclick: () => this.showPost(id, { keepFocus: true }) }, 'Cancel')));
    form.querySelector('#edit-title').value = post.title;
    form.querySelector('#edit-content').value = post.content;
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const submit = form.querySelector('button[type=submit]');
      if (submit.disabled) return;
      submit.disabled = true;
      clearErrors(fields);
      try {
        const updated = await api('PATCH', `/api/posts/${id}`, {
          title: form.querySelector('#edit-title').value,
          content: form.querySelector('#edit-content').value,
          categories: [...form.querySelectorAll('input[type=checkbox]:checked')].map((i) => i.value),
        });
        this.remember(updated);
        this.renderOpenPost();
        this.refresh('post', id);
        toast('Your post is saved.');
      } catch (err) {
        showErrors(err, fields);
      } finally {
        submit.disabled = false;
      }
    });
    article.replaceChildren(form);
    form.querySelector('#edit-title').focus();
  }

  async deletePost(id) {
    try {
      await api('DELETE', `/api/posts/${id}`);
      this.forget(id);
      toast('Your post is deleted.');
      location.hash = '#/';
    } catch (e) {
      toast(`Could not delete the post: ${e.message}`);
    }
  }

  forget(id) {
    this.posts.delete(id);
    const card = this.cards.get(id);
    if (card) {
      card.remove();
      this.cards.delete(id);
      this.renderMore();
    }
    if (this.open && this.open.id === id) {
      $('post-holder').replaceChildren();
      $('comments').hidden = true;
      $('post-gone').hidden = false;
    }
  }

  // ---- the post view ----

  /** Opens one post and its first page of comments. */
  async showPost(id, { keepFocus = false } = {}) {
    const reopening = this.open && this.open.id === id;
    this.open = { id, comments: new Map(), cursor: null, done: false, loading: false, generation: (this.open ? this.open.generation : 0) + 1 };
    const open = this.open;
    if (!reopening) {
      $('post-holder').replaceChildren(h('p', { class: 'loading', text: 'Loading…' }));
      $('comments').hidden = true;
    }
    $('post-gone').hidden = true;
    $('comment-list').replaceChildren();
    clearErrors(COMMENT);
    try {
      const post = await api('GET', `/api/posts/${id}`);
      if (open !== this.open) return;
      this.remember(post);
      this.renderOpenPost();
      $('comments').hidden = false;
      await this.loadComments();
      if (!keepFocus && open === this.open) {
        const title = document.querySelector('#post-holder .post-title');
        if (title) {
          title.tabIndex = -1;
          title.focus();
        }
      }
    } catch (e) {
      if (open !== this.open) return;
      $('post-holder').replaceChildren();
      if (e.status === 404) $('post-gone').hidden = false;
      else toast(`Could not load the post: ${e.message}`);
    }
  }

  closePost() {
    this.open = null;
    $('post-holder').replaceChildren();
    $('comment-list').replaceChildren();
  }

  renderOpenPost() {
    if (!this.open) return;
    const post = this.posts.get(this.open.id);
    if (!post) return;
    $('post-holder').replaceChildren(this.buildPost(post, true));
    $('post-view-title').textContent = post.title;
    document.title = `${post.title} · Forum`;
    this.renderCommentsHead();
  }

  renderCommentsHead() {
    const post = this.open && this.posts.get(this.open.id);
    if (!post) return;
    $('comments-title').textContent = post.comment_count === 1 ? '1 comment' : `${post.comment_count} comments`;
    $('comments-empty').hidden = !(this.open.done && this.open.comments.size === 0);
    $('more-comments').hidden = this.open.done;
    $('more-comments').disabled = this.open.loading;
  }

  async loadComments() {
    const open = this.open;
    if (!open || open.loading || open.done) return;
    open.loading = true;
    this.renderCommentsHead();
    try {
      const page = await api('GET', withQuery(`/api/posts/${open.id}/comments`, { limit: COMMENT_PAGE, cursor: open.cursor }));
      if (open !== this.open) return;
      for (const c of page.items) {
        this.seenComments.add(c.id);
        if (!open.comments.has(c.id)) this.appendComment(c);
      }
      open.cursor = page.next_cursor;
      open.done = !page.next_cursor;
    } catch (e) {
      if (open === this.open) toast(`Could not load comments: ${e.message}`);
    } finally {
      open.loading = false;
      if (open === this.open) this.renderCommentsHead();
    }
  }

  appendComment(comment) {
    this.open.comments.set(comment.id, comment);
    $('comment-list').append(h('li', {}, this.buildComment(comment)));
  }

  buildComment(comment) {
    const id = `comment-${comment.id}`;
    const actions = h('div', { class: 'actions' }, this.reactionBar('comment', comment.id));
    if (comment.author.id === this.me.id) {
      actions.append(
        h('button', { type: 'button', class: 'secondary small', onclick: () => this.editComment(comment.id) }, 'Edit'),
        h('button', { type: 'button', class: 'danger small', onclick: (e) => this.confirmDelete(e.currentTarget, () => this.deleteComment(comment.id)) }, 'Delete'),
      );
    }
    const el = h('article', { class: 'comment', 'aria-labelledby': `${id}-by`, dataset: { commentId: comment.id } },
      h('p', { class: 'meta', id: `${id}-by` }),
      h('p', { class: 'content' }),
      actions);
    this.fillComment(el, comment);
    return el;
  }

  fillComment(el, comment) {
    const meta = el.querySelector('.meta');
    meta.replaceChildren(h('span', { class: 'author', text: comment.author.nickname }), ' · ', timeEl(comment.created_at));
    if (comment.edited_at) meta.append(' · ', h('span', { class: 'edited', text: 'edited' }));
    const content = el.querySelector(':scope > .content');
    if (content) content.textContent = comment.content;
    this.fillReactions(el, comment);
  }

  async addComment(event) {
    event.preventDefault();
    const open = this.open;
    if (!open) return;
    const form = event.currentTarget;
    const button = form.querySelector('button[type=submit]');
    if (button.disabled) return;
    button.disabled = true;
    clearErrors(COMMENT);
    try {
      const comment = await api('POST', `/api/posts/${open.id}/comments`, { content: $('comment-content').value });
      this.commentArrived(comment);
      form.reset();
      $('comment-content').focus();
    } catch (e) {
      showErrors(e, COMMENT);
    } finally {
      button.disabled = false;
    }
  }

  /** A comment from the API or the feed: counted once, shown once. */
  commentArrived(comment) {
    if (this.seenComments.has(comment.id)) return;
    this.seenComments.add(comment.id);
    const post = this.posts.get(comment.post_id);
    if (post) {
      post.comment_count += 1;
      this.refresh('post', post.id);
    }
    // Oldest first: a new comment goes at the end once every page is there.
    if (this.open && this.open.id === comment.post_id && this.open.done && !this.open.comments.has(comment.id)) {
      this.appendComment(comment);
    }
    this.renderCommentsHead();
  }

  editComment(id) {
    const comment = this.open && this.open.comments.get(id);
    const el = document.querySelector(`article.comment[data-comment-id="${sel(id)}"]`);
    if (!comment || !el || el.querySelector('form')) return;
    const content = el.querySelector(':scope > .content');
    const area = h('textarea', { id: 'edit-comment-content', rows: 3, 'aria-describedby': 'edit-comment-error' });
    area.value = comment.content;
    const errors = { fields: { content: { error: 'edit-comment-error', input: 'edit-comment-content' } }, general: 'edit-comment-error' };
    const form = h('form', { class: 'edit', novalidate: true, 'aria-label': 'Edit comment' },
      h('label', { for: 'edit-comment-content', text: 'Edit your comment' }), area,
      h('p', { class: 'field-error', id: 'edit-comment-error' }),
      h('div', { class: 'buttons' },
        h('button', { type: 'submit', class: 'primary small' }, 'Save'),
        h('button', { type: 'button', class: 'secondary small', onclick: () => { form.replaceWith(content); } }, 'Cancel')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearErrors(errors);
      try {
        const updated = await api('PATCH', `/api/comments/${id}`, { content: area.value });
        Object.assign(comment, updated);
        form.replaceWith(content);
        this.fillComment(el, comment);
      } catch (err) {
        showErrors(err, errors);
      }
    });
    content.replaceWith(form);
    area.focus();
  }

  async deleteComment(id) {
    try {
      await api('DELETE', `/api/comments/${id}`);
      this.removeComment(id);
    } catch (e) {
      toast(`Could not delete the comment: ${e.message}`);
    }
  }

  removeComment(id) {
    if (!this.open || !this.open.comments.has(id)) return;
    const comment = this.open.comments.get(id);
    this.open.comments.delete(id);
    const el = document.querySelector(`article.comment[data-comment-id="${sel(id)}"]`);
    if (el) el.parentElement.remove();
    const post = this.posts.get(comment.post_id);
    if (post && post.comment_count > 0) {
      post.comment_count -= 1;
      this.refresh('post', post.id);
    }
    this.renderCommentsHead();
  }

  // ---- live frames ----

  frame(type, data) {
    switch (type) {
      case 'post.new': {
        if (this.posts.has(data.id) && this.cards.has(data.id)) return;
        const post = this.remember(data, { reaction: false });
        if (this.matches(post) && !this.cards.has(post.id)) this.prependCard(post);
        break;
      }
      case 'post.updated': {
        const post = this.remember(data, { reaction: false });
        const card = this.cards.get(post.id);
        if (card && !this.matches(post)) {
          card.remove();
          this.cards.delete(post.id);
        }
        this.refresh('post', post.id);
        if (this.open && this.open.id === post.id) {
          const holder = document.querySelector('#post-holder article.post');
          if (holder && !holder.querySelector('form')) this.renderOpenPost();
        }
        break;
      }
      case 'post.deleted':
        this.forget(data.id);
        break;
      case 'comment.new':
        this.commentArrived(data);
        break;
      case 'comment.deleted':
        this.removeComment(data.id);
        break;
      case 'reaction.updated': {
        const item = data.target === 'post' ? this.posts.get(data.id) : this.open && this.open.comments.get(data.id);
        if (!item) return;
        item.likes = data.likes;
        item.dislikes = data.dislikes;
        this.refresh(data.target, data.id);
        break;
      }
      default:
    }
  }
}
