// The web page's private chat and notifications, two people in two
// browser contexts: node tests/web/chat.mjs BASE_URL
//
// The users list (online or offline, in the API's order), a conversation's
// last 10 messages and 10 more on each scroll to the top (one request at a
// time), messages live both ways with their sender and date, unread counts
// and read marks, the typing indicator shown and ended, notifications
// (badge, list, mark one and all read, live), a phone-sized screen.

import {
  PHONE, assertControlsNamed, assertNoHorizontalScroll, assertNoProblems, call, expectCount,
  expectText, hidden, launch, login, must, openPage, register, run, screenshot, step, texts, trackRequests,
  until, visible,
} from './lib.mjs';

const base = process.argv[2];
if (!base) throw new Error('usage: chat.mjs BASE_URL');

run(async () => {
  const [annUser, bobUser, carlUser] = [await register(base, 'ann'), await register(base, 'bob'), await register(base, 'Carl')];
  // Something in the feed beside the chat (for the screenshots).
  for (const [title, content, category] of [
    ['Welcome to the forum', 'Say hello in the comments, or chat with anyone on the right.', 'general'],
    ['Release notes: live chat', 'Messages, typing indicators and unread counts now update live.', 'news'],
  ]) {
    await must(base, 'POST', '/api/posts', 201, { token: carlUser.token, body: { title, content, categories: [category] } });
  }
  const browser = await launch();
  const ann = await openPage(browser, base, { token: annUser.token });
  const bob = await openPage(browser, base, { token: bobUser.token });
  const pages = [ann, bob];
  const users = (page) => page.getByRole('list', { name: 'Users' });
  const user = (page, nickname) => users(page).getByRole('button', { name: new RegExp(`^${nickname}\\b`) });
  const names = async (page) => (await texts(users(page).locator('.user-name')));
  const messages = (page) => page.getByRole('log');
  const badge = (page) => page.getByRole('link', { name: /^Notifications/ });

  await step('the users list shows everyone else, online or offline, by nickname', pages, async () => {
    await ann.goto('/');
    await bob.goto('/');
    await visible(user(ann, 'bob'));
    await until(async () => JSON.stringify(await names(ann)) === JSON.stringify(['bob', 'Carl']), 'bob then Carl');
    await expectText(user(ann, 'bob').locator('.user-status'), 'online', 'bob online');
    await expectText(user(ann, 'Carl').locator('.user-status'), 'offline', 'Carl offline');
    await expectText(user(bob, 'ann').locator('.user-status'), 'online', 'ann online for bob');
    await assertControlsNamed(ann, 'chat list');
  });

  await step('a message from Carl moves him to the top with an unread count and a notification', pages, async () => {
    await must(base, 'POST', `/api/conversations/${annUser.id}/messages`, 201, { token: carlUser.token, body: { content: 'Hi ann, Carl here.' } });
    await until(async () => JSON.stringify(await names(ann)) === JSON.stringify(['Carl', 'bob']), 'Carl first');
    await expectText(user(ann, 'Carl').locator('.badge'), '1 unread');
    await until(async () => (await badge(ann).getAttribute('aria-label')) === 'Notifications, 1 unread', 'one notification');
    await expectText(ann.locator('#notifications-badge'), '1');
  });

  await step('typing is shown to the other person with a name, and ends when they stop', pages, async () => {
    await user(bob, 'ann').click();
    await visible(bob.getByRole('heading', { name: 'ann', level: 3 }));
    await visible(bob.getByText('This is the start of your conversation.'));
    await user(ann, 'bob').click();
    const input = ann.getByLabel('Message to bob');
    await input.pressSequentially('Hel', { delay: 50 });
    await visible(bob.getByText('ann is typing'));
    await expectText(user(bob, 'ann').locator('.user-status'), 'typing…');
    await screenshot(bob, 'chat-typing');
    // Emptying the box stops it.
    await input.fill('');
    await input.press('Backspace');
    await hidden(bob.getByText('ann is typing'));
    await expectText(user(bob, 'ann').locator('.user-status'), 'online');
    // Typing again, then sending, stops it too.
    await input.pressSequentially('Hello bob!', { delay: 30 });
    await visible(bob.getByText('ann is typing'));
    await input.press('Enter');
    await hidden(bob.getByText('ann is typing'));
  });

  await step('messages arrive live in both browsers with their sender and date', pages, async () => {
    for (const page of [ann, bob]) {
      const last = messages(page).getByRole('listitem').last();
      await expectText(last.locator('.message-text'), 'Hello bob!');
      await expectText(last.locator('.sender'), 'ann');
      await until(async () => (await last.locator('time').getAttribute('datetime')) !== null, 'a date');
    }
    await bob.getByLabel('Message to ann').fill('Hi ann, how are you?');
    await bob.getByRole('button', { name: 'Send' }).click();
    const last = messages(ann).getByRole('listitem').last();
    await expectText(last.locator('.message-text'), 'Hi ann, how are you?');
    await expectText(last.locator('.sender'), 'bob');
    await expectCount(messages(ann).getByRole('listitem'), 2, 'no duplicate on ann');
    await expectCount(messages(bob).getByRole('listitem'), 2, 'no duplicate on bob');
    // Open on both sides: nothing unread; bob is now first on ann's list.
    await until(async () => JSON.stringify(await names(ann)) === JSON.stringify(['bob', 'Carl']), 'bob first now');
    await expectCount(user(ann, 'bob').locator('.badge'), 0, 'no unread from bob');
    await expectCount(user(bob, 'ann').locator('.badge'), 0, 'no unread from ann');
    await assertControlsNamed(ann, 'conversation');
    await screenshot(ann, 'chat');
  });

  await step('a closed conversation counts unread messages; opening it marks them read', pages, async () => {
    await bob.getByRole('button', { name: 'Close conversation' }).click();
    await hidden(bob.getByRole('log'));
    const before = Number(await bob.locator('#notifications-badge').textContent()) || 0;
    await ann.getByLabel('Message to bob').fill('Are you there?');
    await ann.getByLabel('Message to bob').press('Enter');
    await ann.getByLabel('Message to bob').fill('Hello?');
    await ann.getByLabel('Message to bob').press('Enter');
    await expectText(user(bob, 'ann').locator('.badge'), '2 unread');
    await until(async () => Number(await bob.locator('#notifications-badge').textContent()) === before + 2, 'two more notifications for bob');
    const reads = trackRequests(bob, /\/api\/conversations\/[^/]+\/read$/);
    await user(bob, 'ann').click();
    await expectText(messages(bob).getByRole('listitem').last().locator('.message-text'), 'Hello?');
    await expectCount(user(bob, 'ann').locator('.badge'), 0, 'read');
    await until(async () => reads.finished >= 1, 'the read mark sent');
    // The server agrees.
    const list = await must(base, 'GET', '/api/users', 200, { token: bobUser.token });
    const fromAnn = list.find((u) => u.id === annUser.id);
    if (!fromAnn || fromAnn.unread !== 0) throw new Error(`server unread: ${JSON.stringify(fromAnn)}`);
  });

  await step('scrolling up loads 10 older messages at a time, one request at a time', pages, async () => {
    // 4 messages so far; 33 more from bob makes 37: pages of 10, 10, 10, 7.
    for (let i = 1; i <= 33; i++) {
      await must(base, 'POST', `/api/conversations/${annUser.id}/messages`, 201, { token: bobUser.token, body: { content: `Old news ${i}` } });
    }
    await expectText(messages(ann).getByRole('listitem').last().locator('.message-text'), 'Old news 33');
    await ann.reload();
    const requests = trackRequests(ann, /\/api\/conversations\/[^/]+\/messages/);
    await user(ann, 'bob').click();
    const items = messages(ann).getByRole('listitem');
    await expectCount(items, 10, 'the last 10');
    await expectText(items.last().locator('.message-text'), 'Old news 33');
    await expectText(items.first().locator('.message-text'), 'Old news 24');
    if (requests.started !== 1) throw new Error(`opening sent ${requests.started} requests`);
    // A fast scroll in small steps, so that several scroll events come
    // while near the top: wheel up over the messages again and again.
    const scroller = ann.locator('#message-scroller');
    await scroller.hover();
    for (let i = 0; i < 1500 && (await items.count()) < 37; i++) {
      await ann.mouse.wheel(0, -25);
    }
    await expectCount(items, 37, 'every message');
    await visible(ann.getByText('This is the start of your conversation.'));
    if (requests.started !== 4) throw new Error(`expected 4 page requests, saw ${requests.started}: ${requests.urls.join(' ')}`);
    if (requests.maxInFlight !== 1) throw new Error(`${requests.maxInFlight} page requests at once`);
    const all = await texts(items.locator('.message-text'));
    const want = ['Hello bob!', 'Hi ann, how are you?', 'Are you there?', 'Hello?', ...Array.from({ length: 33 }, (_, i) => `Old news ${i + 1}`)];
    if (JSON.stringify(all) !== JSON.stringify(want)) throw new Error(`messages out of order: ${all.join(' | ')}`);
    const senders = await texts(items.locator('.sender'));
    if (senders.some((s) => s !== 'ann' && s !== 'bob')) throw new Error(`senders: ${senders}`);
    if ((await items.locator('time[datetime]').count()) !== 37) throw new Error('a message without its date');
  });

  await step('notifications: the badge, the list, live arrivals, mark one and all read', pages, async () => {
    const post = await must(base, 'POST', '/api/posts', 201, { token: bobUser.token, body: { title: 'Bob writes', content: 'Hello.', categories: ['general'] } });
    await bob.getByRole('link', { name: /^Notifications/ }).click();
    await visible(bob.getByRole('heading', { name: 'Notifications', level: 1 }));
    const list = bob.getByRole('list', { name: 'Notifications' }).getByRole('listitem');
    await until(async () => (await list.count()) >= 2, 'message notifications listed');
    await expectText(list.first().locator('.notification-text'), 'ann sent you a message');
    const unreadNow = Number(await bob.locator('#notifications-badge').textContent());
    // A comment and a like arrive live.
    await must(base, 'POST', `/api/posts/${post.id}/comments`, 201, { token: annUser.token, body: { content: 'Welcome!' } });
    await expectText(list.first().locator('.notification-text'), 'ann commented on your post');
    await must(base, 'PUT', `/api/posts/${post.id}/reaction`, 200, { token: annUser.token, body: { reaction: 'like' } });
    await expectText(list.first().locator('.notification-text'), 'ann reacted to your post');
    await expectText(bob.locator('#notifications-badge'), String(unreadNow + 2));
    await assertControlsNamed(bob, 'notifications');
    await screenshot(bob, 'notifications');
    // Mark one read.
    await list.nth(1).getByRole('button', { name: 'Mark as read' }).click();
    await expectText(bob.locator('#notifications-badge'), String(unreadNow + 1));
    await expectCount(list.nth(1).getByRole('button', { name: 'Mark as read' }), 0, 'marked');
    // Open the post from the newest one.
    await list.first().getByRole('link', { name: 'Open post' }).click();
    await visible(bob.getByRole('heading', { name: 'Bob writes', level: 2 }));
    await expectText(bob.locator('#notifications-badge'), String(unreadNow));
    await bob.getByRole('link', { name: /^Notifications/ }).click();
    await bob.getByRole('button', { name: 'Mark all as read' }).click();
    await hidden(bob.locator('#notifications-badge'));
    await until(async () => (await bob.getByRole('link', { name: /^Notifications/ }).getAttribute('aria-label')) === 'Notifications', 'no unread');
    const server = await must(base, 'GET', '/api/notifications', 200, { token: bobUser.token });
    if (server.unread_count !== 0) throw new Error(`server still counts ${server.unread_count} unread`);
    // "Reply" opens the conversation.
    await list.filter({ hasText: 'sent you a message' }).first().getByRole('button', { name: 'Reply to ann' }).click();
    await visible(bob.getByLabel('Message to ann'));
  });

  await step('presence: a person who leaves goes offline, and comes back online', pages, async () => {
    await bob.context().close();
    pages.pop();
    await expectText(user(ann, 'bob').locator('.user-status'), 'offline');
    const again = await openPage(browser, base, { token: await login(base, bobUser) });
    pages.push(again);
    await again.goto('/');
    await expectText(user(ann, 'bob').locator('.user-status'), 'online');
    // Log out from the notifications view.
    await again.getByRole('link', { name: /^Notifications/ }).click();
    await visible(again.getByRole('heading', { name: 'Notifications', level: 1 }));
    await again.getByRole('button', { name: 'Log out' }).click();
    await visible(again.getByRole('heading', { name: 'Log in' }));
    const { status } = await call(base, 'GET', '/api/auth/me', { token: bobUser.token });
    if (status !== 200) throw new Error('the other session ended too');
    await expectText(user(ann, 'bob').locator('.user-status'), 'offline');
  });

  await step('the chat on a phone-sized screen', pages, async () => {
    const phone = await openPage(browser, base, { token: carlUser.token, viewport: PHONE, isMobile: true });
    pages.push(phone);
    await phone.goto('/');
    await visible(phone.getByRole('heading', { name: 'Posts' }));
    await phone.getByRole('button', { name: /^Chat/ }).click();
    await user(phone, 'ann').click();
    await expectText(messages(phone).getByRole('listitem').last().locator('.message-text'), 'Hi ann, Carl here.');
    await phone.getByLabel('Message to ann').fill('Sent from my phone');
    await phone.getByRole('button', { name: 'Send' }).click();
    await expectText(messages(phone).getByRole('listitem').last().locator('.message-text'), 'Sent from my phone');
    await assertNoHorizontalScroll(phone, 'phone chat');
    await assertControlsNamed(phone, 'phone chat');
    await screenshot(phone, 'chat-phone');
    await expectText(user(ann, 'Carl').locator('.badge'), '2 unread');
  });

  for (const page of pages) assertNoProblems(page, 'page');
  await browser.close();
});
