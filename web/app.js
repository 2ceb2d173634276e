// The forum's single-page application. Without a session it shows only the
// login and register views; with one, the feed or a post or the
// notifications in the main column and the private chat beside them, kept
// current by the live feed. Views are chosen by the URL's fragment:
// `#/`, `#/post/ID`, `#/notifications`.

import { api, setUnauthorizedHandler } from './api.js';
import { hideAuth, initAuth, showAuth } from './auth.js';
import { Chat } from './chat.js';
import { $, toast } from './dom.js';
import { Feed } from './feed.js';
import { Live } from './live.js';
import { Notifications } from './notifications.js';

/** The signed-in session: its user, its modules and its live feed. */
let session = null;

const PHONE = window.matchMedia('(max-width: 760px)');

function setPane(pane) {
  document.body.classList.toggle('pane-chat', pane === 'chat');
  document.body.classList.toggle('pane-main', pane !== 'chat');
  $('nav-chat').setAttribute('aria-pressed', String(pane === 'chat'));
}

function start(me) {
  if (session) stop();
  hideAuth();
  $('app').hidden = false;
  $('me-name').textContent = me.nickname;
  const ctx = {
    me,
    live: null,
    openConversation: (id) => session && session.chat.openConversation(id),
    showChat: () => {
      if (PHONE.matches) setPane('chat');
    },
  };
  const live = new Live({
    onHello: (data, first) => {
      // A first socket, or one the server could not resume: load from REST.
      if (first || !data.resumed) loadAll();
    },
    onFrame: (frame) => dispatch(frame),
    onStatus: (connected, text) => {
      $('connection').hidden = connected;
      $('connection').textContent = text;
    },
    onSessionEnded: () => ended('Your session has ended. Please log in again.'),
  });
  ctx.live = live;
  session = {
    me,
    live,
    feed: new Feed(ctx),
    chat: new Chat(ctx),
    notifications: new Notifications(ctx),
    loaded: false,
  };
  route();
  live.start();
  // If the socket cannot be had at all, the page still shows what REST says.
  const mine = session;
  setTimeout(() => {
    if (session === mine && !mine.loaded) loadAll();
  }, 4000);
}

async function loadAll() {
  const s = session;
  if (!s) return;
  s.loaded = true;
  await Promise.all([s.feed.load(), s.chat.load(), s.notifications.load()]);
}

function dispatch(frame) {
  const s = session;
  if (!s) return;
  const { type, data } = frame;
  if (type.startsWith('post.') || type.startsWith('comment.') || type === 'reaction.updated') s.feed.frame(type, data);
  else if (type.startsWith('message.') || type === 'presence' || type === 'typing') s.chat.frame(type, data);
  else if (type === 'notification.new') s.notifications.frame(type, data);
  else if (type === 'error') console.warn('live feed:', data.code, data.message);
}

function stop() {
  if (!session) return;
  session.live.stop();
  session.feed.destroy();
  session.chat.destroy();
  session.notifications.destroy();
  session = null;
  $('app').hidden = true;
  $('connection').hidden = true;
  $('toast').hidden = true;
}

function ended(message) {
  stop();
  showAuth('login');
  if (message) $('login-error').textContent = message;
}

async function logout() {
  const s = session;
  if (!s || s.loggingOut) return;
  s.loggingOut = true;
  // The server closes this session's sockets (4001): not news to us.
  s.live.stop();
  const button = $('logout');
  button.disabled = true;
  try {
    await api('POST', '/api/auth/logout', undefined, { auth: false });
  } catch (e) {
    if (e.status !== 401) {
      toast(`Could not log out: ${e.message}`);
      s.loggingOut = false;
      if (session === s) s.live.start();
      return;
    }
  } finally {
    button.disabled = false;
  }
  if (session !== s) return;
  history.replaceState(null, '', '#/');
  ended('');
}

/** Shows the view the URL's fragment names. */
function route() {
  const s = session;
  if (!s) return;
  const hash = location.hash || '#/';
  const post = /^#\/post\/([0-9a-fA-F-]{36})$/.exec(hash);
  const view = post ? 'post' : hash === '#/notifications' ? 'notifications' : 'feed';
  $('feed-view').hidden = view !== 'feed';
  $('post-view').hidden = view !== 'post';
  $('notifications-view').hidden = view !== 'notifications';
  $('nav-posts').toggleAttribute('aria-current', view === 'feed');
  if (view === 'feed') $('nav-posts').setAttribute('aria-current', 'page');
  if (view === 'notifications') $('nav-notifications').setAttribute('aria-current', 'page');
  else $('nav-notifications').removeAttribute('aria-current');
  setPane('main');
  // The feed keeps its place; another view starts at its top.
  if (s.view === 'feed' && view !== 'feed') s.feedScroll = window.scrollY;
  if (s.view !== view) window.scrollTo(0, view === 'feed' ? s.feedScroll || 0 : 0);
  s.view = view;
  if (view === 'post') {
    s.feed.showPost(post[1]);
  } else {
    s.feed.closePost();
    document.title = view === 'notifications' ? 'Notifications · Forum' : 'Forum';
    // The new view's heading takes the focus, unless the person is
    // elsewhere (the header's links keep it, the chat keeps it).
    const focused = document.activeElement;
    if (!focused || focused === document.body || $('main').contains(focused)) {
      $(view === 'notifications' ? 'notifications-title' : 'feed-title').focus({ preventScroll: true });
    }
  }
}

function init() {
  initAuth(start);
  setUnauthorizedHandler(() => {
    if (session && !session.loggingOut) ended('Your session has ended. Please log in again.');
  });
  $('logout').addEventListener('click', logout);
  $('nav-chat').addEventListener('click', () => setPane(document.body.classList.contains('pane-chat') ? 'main' : 'chat'));
  window.addEventListener('hashchange', route);
  api('GET', '/api/auth/me', undefined, { auth: false })
    .then((me) => start(me))
    .catch((e) => {
      showAuth('login');
      if (e.status !== 401) $('login-error').textContent = e.message;
    });
}

init();
