// The web page's accounts and feed, in a real browser:
// node tests/web/feed.mjs BASE_URL
//
// Only login and register without a session; registration errors beside
// their fields; log in by nickname and by e-mail; log out from every view;
// posts with categories, text from users shown as text; reactions one at a
// time; comments only in the post view; edit and delete one's own; filters
// (category, my posts, posts I liked, combined); infinite scroll one page
// at a time; everything arriving live in another person's browser;
// accessible names; keyboard; a phone-sized screen.

import {
  PHONE, assertControlsNamed, assertNoHorizontalScroll, assertNoProblems, description, expectAttr,
  expectCount, expectText, expectTexts, hidden, launch, login, must, openPage, recordResponses, register, run, screenshot, step, texts,
  trackRequests, until, visible,
} from './lib.mjs';

const base = process.argv[2];
if (!base) throw new Error('usage: feed.mjs BASE_URL');

const XSS = '<img src=x onerror=alert(1)>';

run(async () => {
  const browser = await launch();
  const ann = await openPage(browser, base);
  const pages = [ann];
  const authRegion = (page, name) => page.getByRole('region', { name });
  const article = (page, title) => page.getByRole('article', { name: title, exact: true });
  const logOut = async (page) => {
    await page.getByRole('button', { name: 'Log out' }).click();
    await visible(page.getByRole('heading', { name: 'Log in' }));
  };

  await step('without a session only the login view is shown, then register', pages, async () => {
    await ann.goto('/');
    await visible(ann.getByRole('heading', { name: 'Log in' }));
    await expectCount(ann.getByRole('heading', { name: 'Posts' }), 0, 'no feed');
    await expectCount(ann.getByRole('heading', { name: 'Chat' }), 0, 'no chat');
    await expectCount(ann.getByRole('link', { name: /Notifications/ }), 0, 'no notifications');
    await assertControlsNamed(ann, 'login');
    await ann.getByRole('button', { name: 'Create an account' }).click();
    await visible(ann.getByRole('heading', { name: 'Create an account' }));
    await expectCount(ann.getByRole('heading', { name: 'Log in' }), 0, 'only the register view');
  });

  await step('registration errors are shown beside each field as the API names them', pages, async () => {
    const form = authRegion(ann, 'Create an account');
    await form.getByLabel('Nickname').fill('x!');
    await form.getByLabel('Age').fill('5');
    await form.getByLabel('E-mail').fill('not-an-address');
    await form.getByLabel('Password').fill('short');
    await form.getByRole('button', { name: 'Create account' }).click();
    for (const label of ['Nickname', 'Age', 'Gender', 'First name', 'Last name', 'E-mail', 'Password']) {
      const control = form.getByLabel(label, { exact: true });
      await expectAttr(control, 'aria-invalid', 'true', `${label} marked invalid`);
      await until(async () => (await description(control)).length > 0, `an error beside ${label}`);
    }
    await until(async () => /8 to 128/.test(await description(form.getByLabel('Password'))), 'the password rule');
    await assertControlsNamed(ann, 'register');
    await screenshot(ann, 'register-errors');
  });

  await step('a person registers with the seven fields and sees the feed and the chat', pages, async () => {
    const form = authRegion(ann, 'Create an account');
    await form.getByLabel('Nickname').fill('ann');
    await form.getByLabel('Age').fill('34');
    await form.getByLabel('Gender').selectOption('female');
    await form.getByLabel('First name').fill('Ann');
    await form.getByLabel('Last name').fill('Smith');
    await form.getByLabel('E-mail').fill('ann@example.org');
    await form.getByLabel('Password').fill('password-ann');
    await form.getByRole('button', { name: 'Create account' }).click();
    await visible(ann.getByRole('heading', { name: 'Posts' }));
    await visible(ann.getByRole('heading', { name: 'Chat' }));
    await expectText(ann.locator('#me-name'), 'ann');
    await visible(ann.getByText('No posts to show.'));
  });

  await step('a taken nickname is shown beside the nickname field; log in by nickname and by e-mail', pages, async () => {
    await logOut(ann);
    await ann.getByRole('button', { name: 'Create an account' }).click();
    const form = authRegion(ann, 'Create an account');
    await form.getByLabel('Nickname').fill('ANN');
    await form.getByLabel('Age').fill('40');
    await form.getByLabel('Gender').selectOption('other');
    await form.getByLabel('First name').fill('Other');
    await form.getByLabel('Last name').fill('Ann');
    await form.getByLabel('E-mail').fill('other-ann@example.org');
    await form.getByLabel('Password').fill('password-other');
    await form.getByRole('button', { name: 'Create account' }).click();
    await until(async () => (await description(form.getByLabel('Nickname'))).length > 0, 'nickname taken beside the field');
    await form.getByRole('button', { name: 'Log in instead' }).click();
    const loginForm = authRegion(ann, 'Log in');
    await loginForm.getByLabel('Nickname or e-mail').fill('ann');
    await loginForm.getByLabel('Password').fill('wrong-password');
    await loginForm.getByRole('button', { name: 'Log in' }).click();
    await visible(loginForm.getByRole('alert').filter({ hasText: 'Wrong nickname, e-mail or password.' }));
    await loginForm.getByLabel('Password').fill('password-ann');
    await loginForm.getByRole('button', { name: 'Log in' }).click();
    await visible(ann.getByRole('heading', { name: 'Posts' }));
    await logOut(ann);
    await loginForm.getByLabel('Nickname or e-mail').fill('ann@example.org');
    await loginForm.getByLabel('Password').fill('password-ann');
    // The keyboard submits the form.
    await loginForm.getByLabel('Password').press('Enter');
    await visible(ann.getByRole('heading', { name: 'Posts' }));
  });

  const bobUser = await register(base, 'bob');
  const bob = await openPage(browser, base, { token: bobUser.token });
  pages.push(bob);

  await step('a post with two categories is created and appears live in another browser', pages, async () => {
    await bob.goto('/');
    await visible(bob.getByRole('heading', { name: 'Posts' }));
    await visible(bob.getByText('No posts to show.'));
    await ann.getByRole('button', { name: 'New post' }).click();
    await ann.getByLabel('Title', { exact: true }).fill('Hello from ann');
    await ann.getByLabel('Content', { exact: true }).fill('First line\nSecond line');
    await ann.getByRole('button', { name: 'Publish' }).click();
    // No category: the API's error beside the categories.
    await visible(ann.locator('#compose-categories-error').filter({ hasText: /.+/ }));
    await ann.getByRole('checkbox', { name: 'General' }).check();
    await ann.getByRole('checkbox', { name: 'News' }).check();
    await ann.getByRole('button', { name: 'Publish' }).click();
    const mine = article(ann, 'Hello from ann');
    await visible(mine);
    await expectTexts(mine.getByRole('list', { name: 'Categories' }).getByRole('listitem'), ['General', 'News']);
    const theirs = article(bob, 'Hello from ann');
    await visible(theirs);
    await expectText(theirs.locator('.content'), 'First line Second line');
    await expectText(theirs.locator('.author'), 'ann');
  });

  await step('text from users is inserted as text, never as HTML', pages, async () => {
    await ann.getByRole('button', { name: 'New post' }).click();
    await ann.getByLabel('Title', { exact: true }).fill(XSS);
    await ann.getByLabel('Content', { exact: true }).fill('<script>alert(2)</script><b>bold?</b>');
    await ann.getByRole('checkbox', { name: 'General' }).check();
    await ann.getByRole('button', { name: 'Publish' }).click();
    for (const page of [ann, bob]) {
      await visible(page.getByRole('link', { name: XSS, exact: true }));
      await expectText(article(page, XSS).locator('.content'), '<script>alert(2)</script><b>bold?</b>');
      await expectCount(page.locator('main img, main script, main b'), 0, 'no element made from user text');
    }
  });

  await step('likes and dislikes: one at a time, counts shown live, withdrawn', pages, async () => {
    const onBob = article(bob, 'Hello from ann');
    const onAnn = article(ann, 'Hello from ann');
    await onBob.getByRole('button', { name: /^Like/ }).click();
    await expectText(onBob.getByRole('button', { name: /^Like/ }), /\bLike 1$/);
    await expectAttr(onBob.getByRole('button', { name: /^Like/ }), 'aria-pressed', 'true');
    await expectText(onAnn.getByRole('button', { name: /^Like/ }), /\bLike 1$/, 'the like live on ann');
    await onBob.getByRole('button', { name: /^Dislike/ }).click();
    await expectText(onBob.getByRole('button', { name: /^Dislike/ }), /\bDislike 1$/);
    await expectText(onBob.getByRole('button', { name: /^Like/ }), /\bLike 0$/);
    await expectAttr(onBob.getByRole('button', { name: /^Like/ }), 'aria-pressed', 'false');
    await expectText(onAnn.getByRole('button', { name: /^Dislike/ }), /\bDislike 1$/, 'the dislike live on ann');
    await expectText(onAnn.getByRole('button', { name: /^Like/ }), /\bLike 0$/);
    // Withdrawn by pressing it again; then liked again, by keyboard.
    await onBob.getByRole('button', { name: /^Dislike/ }).click();
    await expectText(onBob.getByRole('button', { name: /^Dislike/ }), /\bDislike 0$/);
    await expectText(onAnn.getByRole('button', { name: /^Dislike/ }), /\bDislike 0$/);
    await onBob.getByRole('button', { name: /^Like/ }).focus();
    await bob.keyboard.press('Space');
    await expectText(onBob.getByRole('button', { name: /^Like/ }), /\bLike 1$/);
    await expectText(onAnn.getByRole('button', { name: /^Like/ }), /\bLike 1$/);
  });

  await step('comments are shown only in the post view, added, and arrive live', pages, async () => {
    await expectCount(bob.getByRole('list', { name: 'Comments' }), 0, 'no comments in the feed');
    // Open by keyboard: focus the title link, press Enter.
    await article(bob, 'Hello from ann').getByRole('link', { name: 'Hello from ann' }).focus();
    await bob.keyboard.press('Enter');
    await visible(bob.getByRole('heading', { name: '0 comments' }));
    await bob.getByLabel('Your comment').fill('Nice post, ann!');
    await bob.getByRole('button', { name: 'Add comment' }).click();
    const comments = bob.getByRole('list', { name: 'Comments' });
    await expectText(comments.getByRole('article').first().locator('.content'), 'Nice post, ann!');
    await visible(bob.getByRole('heading', { name: '1 comment' }));
    // Ann, on the feed, sees the count move; opens the post and sees it.
    await expectText(article(ann, 'Hello from ann').locator('.comments-link'), '1 comment');
    await article(ann, 'Hello from ann').getByRole('link', { name: 'Hello from ann' }).click();
    const annComments = ann.getByRole('list', { name: 'Comments' });
    await expectText(annComments.getByRole('article').first().locator('.content'), 'Nice post, ann!');
    await expectText(annComments.getByRole('article').first().locator('.author'), 'bob');
    // A second comment arrives live in ann's open post.
    await bob.getByLabel('Your comment').fill('And a second thought.');
    await bob.getByRole('button', { name: 'Add comment' }).click();
    await expectCount(annComments.getByRole('article'), 2, 'the second comment live');
    await expectText(annComments.getByRole('article').nth(1).locator('.content'), 'And a second thought.');
    await visible(ann.getByRole('heading', { name: '2 comments' }));
    // A like on a comment, live both ways.
    await annComments.getByRole('article').first().getByRole('button', { name: /^Like/ }).click();
    await expectText(bob.getByRole('list', { name: 'Comments' }).getByRole('article').first().getByRole('button', { name: /^Like/ }), /\bLike 1$/);
    await ann.getByLabel('Your comment').fill('Thanks, bob.');
    await ann.getByRole('button', { name: 'Add comment' }).click();
    await expectCount(annComments.getByRole('article'), 3);
    await assertControlsNamed(ann, 'post view');
    await ann.evaluate(() => window.scrollTo(0, 0));
    await screenshot(ann, 'post-with-comments');
  });

  await step('one edits and deletes only one\'s own comments and posts, live for others', pages, async () => {
    const annComments = ann.getByRole('list', { name: 'Comments' });
    await expectCount(annComments.getByRole('article').first().getByRole('button', { name: 'Edit' }), 0, 'no edit of bob\'s comment');
    const own = annComments.getByRole('article').nth(2);
    await own.getByRole('button', { name: 'Edit' }).click();
    await ann.getByLabel('Edit your comment').fill('Thanks a lot, bob.');
    await ann.getByRole('button', { name: 'Save' }).click();
    await expectText(own.locator('.content'), 'Thanks a lot, bob.');
    await visible(own.getByText('edited'));
    await own.getByRole('button', { name: 'Delete' }).click();
    await ann.getByRole('button', { name: 'Yes, delete' }).click();
    await expectCount(annComments.getByRole('article'), 2, 'the comment deleted');
    // Bob cannot edit ann's post.
    await expectCount(bob.locator('#post-holder').getByRole('button', { name: 'Edit' }), 0, 'no edit of ann\'s post');
    await bob.getByRole('link', { name: 'Back to posts' }).click();
    await visible(bob.getByRole('heading', { name: 'Posts' }));
    // Ann edits her post: bob's feed shows the new title.
    await ann.locator('#post-holder').getByRole('button', { name: 'Edit' }).click();
    await ann.getByRole('form', { name: 'Edit post' }).getByLabel('Title').fill('Hello again from ann');
    await ann.getByRole('button', { name: 'Save' }).click();
    await visible(ann.getByRole('heading', { name: 'Hello again from ann', level: 2 }));
    await visible(article(bob, 'Hello again from ann'));
    await expectCount(article(bob, 'Hello from ann'), 0, 'the old title gone');
    await expectText(article(bob, 'Hello again from ann').locator('.comments-link'), '2 comments');
    // Ann deletes the other post from its view: gone from bob's feed, live.
    await ann.getByRole('link', { name: 'Back to posts' }).click();
    await article(ann, XSS).getByRole('link', { name: XSS }).click();
    await ann.locator('#post-holder').getByRole('button', { name: 'Delete' }).click();
    await ann.getByRole('button', { name: 'Yes, delete' }).click();
    await visible(ann.getByRole('heading', { name: 'Posts' }));
    await expectCount(article(ann, XSS), 0, 'deleted for ann');
    await expectCount(article(bob, XSS), 0, 'deleted live for bob');
  });

  await step('filters: category, my posts, posts I liked, and combined', pages, async () => {
    await bob.getByRole('button', { name: 'New post' }).click();
    await bob.getByLabel('Title', { exact: true }).fill('Bob needs help');
    await bob.getByLabel('Content', { exact: true }).fill('How does this work?');
    await bob.getByRole('checkbox', { name: 'Help' }).check();
    await bob.getByRole('button', { name: 'Publish' }).click();
    await visible(article(bob, 'Bob needs help'));
    await visible(article(ann, 'Bob needs help'));
    const titles = async () => texts(bob.getByRole('list', { name: 'Posts' }).locator('.post-title'));
    const answers = recordResponses(bob, /\/api\/posts\?/);
    const expectTitles = async (want) => {
      try {
        await until(async () => JSON.stringify(await titles()) === JSON.stringify(want), `posts ${want.join(', ')}`);
      } catch (e) {
        throw new Error(`${e.message}; shown ${JSON.stringify(await titles())}; last answers:\n${answers.join('\n')}`);
      }
    };
    await expectTitles(['Bob needs help', 'Hello again from ann']);
    await bob.getByLabel('Category').selectOption('news');
    await expectTitles(['Hello again from ann']);
    await bob.getByLabel('Category').selectOption('help');
    await expectTitles(['Bob needs help']);
    await bob.getByLabel('Category').selectOption('');
    await bob.getByRole('checkbox', { name: 'My posts' }).check();
    await expectTitles(['Bob needs help']);
    await bob.getByRole('checkbox', { name: 'Posts I liked' }).check();
    await visible(bob.getByText('No posts to show.'));
    await bob.getByRole('checkbox', { name: 'My posts' }).uncheck();
    await expectTitles(['Hello again from ann']);
    await bob.getByLabel('Category').selectOption('news');
    await expectTitles(['Hello again from ann']);
    await bob.getByLabel('Category').selectOption('help');
    await visible(bob.getByText('No posts to show.'));
    // A live post that does not match the filters stays out.
    await ann.getByRole('button', { name: 'New post' }).click();
    await ann.getByLabel('Title', { exact: true }).fill('Ann asks for help too');
    await ann.getByLabel('Content', { exact: true }).fill('Me too.');
    await ann.getByRole('checkbox', { name: 'Help' }).check();
    await ann.getByRole('button', { name: 'Publish' }).click();
    await visible(article(ann, 'Ann asks for help too'));
    await bob.getByRole('checkbox', { name: 'Posts I liked' }).uncheck();
    await expectTitles(['Ann asks for help too', 'Bob needs help']);
    await bob.getByLabel('Category').selectOption('');
    await expectTitles(['Ann asks for help too', 'Bob needs help', 'Hello again from ann']);
  });

  await step('infinite scroll loads one page of 20 at a time, with no duplicate', pages, async () => {
    for (let i = 1; i <= 42; i++) {
      await must(base, 'POST', '/api/posts', 201, { token: bobUser.token, body: { title: `Filler post ${i}`, content: `Number ${i}.`, categories: ['off-topic'] } });
    }
    const total = 45;
    const carol = await openPage(browser, base, { token: (await register(base, 'carol')).token });
    pages.push(carol);
    const requests = trackRequests(carol, /\/api\/posts(\?|$)/);
    await carol.goto('/');
    const list = carol.getByRole('list', { name: 'Posts' }).getByRole('article');
    await expectCount(list, 20, 'the first page');
    await expectText(list.first().locator('.post-title'), 'Filler post 42');
    for (let round = 0; round < 10 && (await list.count()) < total; round++) {
      const before = await list.count();
      await carol.getByRole('button', { name: /Load more posts|Loading posts/ }).or(carol.getByText('You have seen every post.')).first().scrollIntoViewIfNeeded();
      await carol.mouse.wheel(0, 4000);
      await until(async () => (await list.count()) > before || (await list.count()) === total, 'the next page');
    }
    await expectCount(list, total, 'every post');
    await visible(carol.getByText('You have seen every post.'));
    const ids = await list.evaluateAll((els) => els.map((e) => e.dataset.postId));
    if (new Set(ids).size !== total) throw new Error(`duplicates: ${ids.length} cards, ${new Set(ids).size} posts`);
    if (requests.started !== 3) throw new Error(`expected 3 page requests, saw ${requests.started}: ${requests.urls.join(' ')}`);
    if (requests.maxInFlight !== 1) throw new Error(`${requests.maxInFlight} page requests at once`);
    await expectText(list.last().locator('.post-title'), 'Hello again from ann');
    await carol.context().close();
    pages.pop();
  });

  await step('every control has a name; the feed shown on a desktop and a phone-sized screen', pages, async () => {
    await ann.getByRole('link', { name: 'Posts', exact: true }).click();
    await ann.evaluate(() => window.scrollTo(0, 0));
    await assertControlsNamed(ann, 'feed');
    await screenshot(ann, 'feed');
    const phone = await openPage(browser, base, { token: await login(base, bobUser), viewport: PHONE, isMobile: true });
    pages.push(phone);
    await phone.goto('/');
    await visible(phone.getByRole('heading', { name: 'Posts' }));
    await visible(article(phone, 'Filler post 42'));
    await assertNoHorizontalScroll(phone, 'phone feed');
    await hidden(phone.getByRole('heading', { name: 'Chat' }));
    await phone.getByRole('button', { name: /^Chat/ }).click();
    await visible(phone.getByRole('heading', { name: 'Chat' }));
    await hidden(phone.getByRole('heading', { name: 'Posts' }));
    await phone.getByRole('link', { name: 'Posts', exact: true }).click();
    await visible(phone.getByRole('heading', { name: 'Posts' }));
    await assertControlsNamed(phone, 'phone feed');
    await screenshot(phone, 'feed-phone');
    await phone.getByLabel('Category').selectOption('news');
    await article(phone, 'Hello again from ann').getByRole('link', { name: 'Hello again from ann' }).click();
    await visible(phone.getByRole('heading', { name: '2 comments' }));
    await assertNoHorizontalScroll(phone, 'phone post');
    // Log out from the post view.
    await logOut(phone);
    await phone.context().close();
    pages.pop();
  });

  for (const page of pages) assertNoProblems(page, 'page');
  await browser.close();
});
