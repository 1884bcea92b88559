/**
 * The web console (GET /) in real Chromium against the real server: what an operator sees and
 * does, checked through the DOM and read back through the WebSocket. Screenshots of each
 * scenario go to test/output/console/.
 */
import assert from "node:assert/strict";
import type { Browser, Page } from "playwright-core";
import { launchChromium, openPage } from "./browser.ts";
import {
  expectOk,
  type Reply,
  type ServerProcess,
  startServer,
  TestClient,
  waitUntil,
} from "./helpers.ts";

const FOLDER = "console";

type TextSelection = { value: string; selectionStart: number; selectionEnd: number };
const LIVE = "videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=30/1 ! " +
  "fakesink sync=true";

/** The URL the server printed for its console. */
async function consoleUrl(server: ServerProcess): Promise<string> {
  const line = await server.waitForLog("Console at ");
  return line.slice(line.indexOf("Console at ") + "Console at ".length).trim();
}

function row(page: Page, id: string) {
  return page.locator(`.prow[data-id="${id}"]`);
}

/** The state badge of a pipeline's row, once it shows `state`. */
async function waitForRowState(page: Page, id: string, state: string): Promise<void> {
  await row(page, id).locator(".state", { hasText: state }).waitFor({ timeout: 15000 });
}

async function request(client: TestClient, type: string, payload?: unknown): Promise<Reply> {
  return expectOk(await client.request(type, payload));
}

Deno.test("console: the default host's printed URL, live list, create, control, graph and properties", async (t) => {
  // The default host (localhost), as users run it; port 0 so that tests do not collide.
  const server = await startServer({ GSTREAMER_WS_HOST: "localhost" });
  const client = await TestClient.connect(server.url);
  let browser: Browser | undefined;
  try {
    const url = await consoleUrl(server);
    assert.match(url, /^http:\/\/localhost:\d+\/$/);
    browser = await launchChromium();
    const { page, errors, shot } = await openPage(browser, url, FOLDER);
    await page.locator(".health .status", { hasText: "connected" }).waitFor({ timeout: 15000 });

    await t.step("a pipeline created by another client appears, with live fps", async () => {
      const created = performance.now();
      await request(client, "createPipeline", {
        id: "other",
        description: "made elsewhere",
        pipeline: LIVE,
      });
      await row(page, "other").waitFor({ timeout: 10000 });
      console.log(
        `  'other' appeared in the console ${
          (performance.now() - created).toFixed(0)
        } ms after its reply`,
      );
      await request(client, "startPipeline", { id: "other" });
      await waitForRowState(page, "other", "PLAYING");
      const fps = async () => Number(await row(page, "other").locator(".fps").textContent());
      const first = await waitUntil(
        async () => (await fps()) > 0 ? await fps() : 0,
        10000,
        "an fps figure",
      );
      // Live: the figure is re-rendered from each stats event (the sparkline grows with it).
      const points = () => row(page, "other").locator("svg.spark polyline").getAttribute("points");
      const before = await waitUntil(points, 10000, "a sparkline");
      await waitUntil(async () => (await points()) !== before, 10000, "the sparkline to move");
      assert.ok(first > 10 && first < 50, `fps ${first}`);
      await shot("list-live");
    });

    await t.step("a push's bitrate updates live", async () => {
      const push = new Deno.Command("ffmpeg", {
        args: [
          ...[
            "-v",
            "error",
            "-nostdin",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=30",
          ],
          ...["-t", "60", "-c:v", "libx264", "-g", "30", "-bf", "0", "-pix_fmt", "yuv420p"],
          ...["-f", "h264", `${server.httpUrl}/push/pushed`],
        ],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      try {
        await row(page, "pushed").waitFor({ timeout: 15000 });
        const bitrate = () => row(page, "pushed").locator(".bitrate").textContent();
        const first = await waitUntil(
          async () => /[kM]b\/s/.test((await bitrate()) ?? "") && await bitrate(),
          15000,
          "a bitrate",
        );
        await waitUntil(async () => (await bitrate()) !== first, 15000, "the bitrate to change");
        await shot("push-bitrate");
      } finally {
        push.kill("SIGKILL");
        await push.status;
      }
      await row(page, "pushed").waitFor({ state: "detached", timeout: 15000 });
    });

    await t.step("create from launch text; a bad one is marked where the server says", async () => {
      const dialog = page.locator("dialog.create");
      // The dialog's own example is taken as it is.
      await page.locator("body").press("n");
      await dialog.waitFor();
      await dialog.locator("input[name=id]").fill("the-example");
      await dialog.locator("button[type=submit]").click();
      await dialog.waitFor({ state: "detached" });
      await waitForRowState(page, "the-example", "PLAYING");
      await request(client, "deletePipeline", { id: "the-example" });

      await page.locator("body").press("n");
      await dialog.waitFor();
      await dialog.locator("input[name=id]").fill("from-text");
      await dialog.locator("textarea").fill("videotestsrc is-live=true ! fakesnk");
      await dialog.locator("button[type=submit]").click();
      const mark = dialog.locator(".problem mark");
      await mark.waitFor();
      assert.equal(await mark.textContent(), "fakesnk");
      assert.match((await dialog.locator(".problem .message").textContent())!, /UNKNOWN_ELEMENT/);
      // The textarea has the same part selected, for the keyboard user.
      const selected = await dialog.locator("textarea").evaluate((element) => {
        const area = element as unknown as TextSelection;
        return area.value.slice(area.selectionStart, area.selectionEnd);
      });
      assert.equal(selected, "fakesnk");
      await shot("create-launch-error");

      await dialog.locator("textarea").fill(
        "videotestsrc is-live=true pattern=ball ! fakesink sync=true",
      );
      await dialog.locator("select[name=restart]").selectOption("on-failure");
      await dialog.locator("button[type=submit]").click();
      await dialog.waitFor({ state: "detached" });
      await waitForRowState(page, "from-text", "PLAYING");
      const info = (await request(client, "getPipeline", { id: "from-text" })).payload as {
        restart: string;
        elements: { type: string; properties: Record<string, unknown> }[];
      };
      assert.equal(info.restart, "on-failure");
      assert.equal(info.elements[0].properties.pattern, "ball");
    });

    await t.step("create from JSON", async () => {
      await page.getByRole("button", { name: "New pipeline" }).click();
      const dialog = page.locator("dialog.create");
      await dialog.getByRole("tab", { name: "JSON" }).click();
      await dialog.locator("input[name=id]").fill("from-json");
      await dialog.locator("textarea").fill('{ "elements": [ {"type": "videotestsrc"}, ');
      await dialog.locator("button[type=submit]").click();
      await dialog.locator(".problem", { hasText: "Not JSON" }).waitFor();
      await dialog.locator("textarea").fill(JSON.stringify({
        elements: [
          { type: "videotestsrc", name: "src", properties: { "is-live": true } },
          { type: "tee", name: "t" },
          { type: "queue", name: "q1" },
          { type: "fakesink", name: "sink1" },
          { type: "queue", name: "q2" },
          { type: "fakesink", name: "sink2" },
        ],
        links: [
          { from: "src", to: "t" },
          { from: "t", to: "q1" },
          { from: "q1", to: "sink1" },
          { from: "t", to: "q2" },
          { from: "q2", to: "sink2" },
        ],
      }));
      await dialog.locator("input[name=start]").uncheck();
      await dialog.locator("button[type=submit]").click();
      await dialog.waitFor({ state: "detached" });
      await waitForRowState(page, "from-json", "NULL");
      expectOk(await client.request("getPipeline", { id: "from-json" }));
    });

    await t.step(
      "start, pause, EOS and stop; the state follows the server's events",
      async () => {
        await row(page, "from-json").click();
        const details = page.locator("aside.details");
        await details.locator("h2", { hasText: "from-json" }).waitFor();
        const badge = details.locator("h2 .state");
        const press = async (action: string, state: string) => {
          const changed = client.event(
            "pipelineStateChanged",
            (p) =>
              (p as { id: string; new: string }).id === "from-json" &&
              (p as { new: string }).new === state,
          );
          await details.locator(`button[data-action="${action}"]`).click();
          await changed;
          await details.locator("h2 .state", { hasText: state }).waitFor({ timeout: 10000 });
        };
        await press("Start", "PLAYING");
        // Once the reply is in, the desired state is what was asked, not a stats interval later.
        await page.locator(".toast", { hasText: "Start from-json: done" }).waitFor();
        assert.equal(await details.locator("dt:text-is('Desired') + dd").textContent(), "playing");
        await shot("details-playing");
        await press("Pause", "PAUSED");
        assert.equal(await badge.textContent(), "PAUSED");
        await press("Start", "PLAYING");
        const eos = client.event("pipelineEos", (p) => (p as { id: string }).id === "from-json");
        await details.locator('button[data-action="Send EOS"]').click();
        await eos;
        await page.locator("section.log li", { hasText: "end of stream" }).first().waitFor();
        await press("Stop", "NULL");
        await shot("details-stopped");
      },
    );

    await t.step("the graph of a tee pipeline is drawn as SVG with the element names", async () => {
      const details = page.locator("aside.details");
      await details.getByRole("tab", { name: "Graph" }).click();
      const svg = details.locator(".graph svg");
      await svg.waitFor({ timeout: 30000 });
      const text = (await svg.locator("text").allTextContents()).join("\n");
      for (const name of ["src", "t", "q1", "q2", "sink1", "sink2"]) {
        assert.ok(text.split("\n").includes(name), `'${name}' is not among the graph's labels`);
      }
      await shot("graph-tee");
    });

    await t.step("a property set in the console reads back through the WebSocket", async () => {
      await row(page, "from-text").click();
      const details = page.locator("aside.details");
      await details.getByRole("tab", { name: "Properties" }).click();
      const pattern = details.locator('tr[data-property="pattern"] select');
      await pattern.waitFor({ timeout: 15000 });
      assert.equal(await pattern.inputValue(), "ball");
      await pattern.selectOption("smpte");
      await waitUntil(
        async () => {
          const reply = await request(client, "getElementProperty", {
            id: "from-text",
            element: "videotestsrc0",
            property: "pattern",
          });
          return (reply.payload as { value: string }).value === "smpte";
        },
        10000,
        "pattern to read back as smpte",
      );
      // A number typed and confirmed with Enter.
      const speed = details.locator('tr[data-property="horizontal-speed"] input');
      await speed.fill("3");
      await speed.press("Enter");
      await waitUntil(
        async () => {
          const reply = await request(client, "getElementProperty", {
            id: "from-text",
            element: "videotestsrc0",
            property: "horizontal-speed",
          });
          return (reply.payload as { value: number }).value === 3;
        },
        10000,
        "horizontal-speed to read back as 3",
      );
      await shot("properties");
    });

    await t.step("delete from the console", async () => {
      await row(page, "from-text").click();
      page.once("dialog", (dialog) => dialog.accept());
      const deleted = client.event(
        "pipelineDeleted",
        (p) => (p as { id: string }).id === "from-text",
      );
      await page.locator('aside.details button[data-action="Delete"]').click();
      await deleted;
      await row(page, "from-text").waitFor({ state: "detached" });
      assert.equal((await client.request("getPipeline", { id: "from-text" })).ok, false);
    });

    await t.step("the element browser lists and inspects the installed elements", async () => {
      await page.locator("body").press("e");
      const dialog = page.locator("dialog.elements");
      await dialog.locator("input[type=search]").fill("videotestsrc");
      await dialog.locator("li", { hasText: "videotestsrc" }).first().click();
      await dialog.locator(".element-info h3", { hasText: "videotestsrc" }).waitFor();
      await dialog.locator(".element-info td code", { hasText: "pattern" }).first().waitFor();
      await shot("elements");
      await page.keyboard.press("Escape");
      await dialog.waitFor({ state: "detached" });
    });

    assert.deepEqual(errors, [], "the browser console had errors");
  } finally {
    await browser?.close();
    await client.close();
    assert.equal(await server.stop(), 0, server.logs.join("\n"));
  }
});

Deno.test("console: with auth on, a login and nothing else; with the token it works, and it reconnects after a restart", async () => {
  const token = "console-test-token";
  const dataDir = await Deno.makeTempDir();
  const env = { GSTREAMER_AUTH_TOKEN: token, GSTREAMER_DATA_DIR: dataDir };
  let server = await startServer(env);
  let browser: Browser | undefined;
  try {
    const url = await consoleUrl(server);
    const port = new URL(url).port;
    browser = await launchChromium();
    const { page, errors, shot } = await openPage(browser, url, FOLDER);
    const login = page.locator("main.login");
    await login.waitFor();
    // Nothing but the login: no pipelines, no controls, no health.
    assert.equal(await page.locator(".pipelines, header.top, aside, .health").count(), 0);
    await shot("login");

    await login.locator("input[name=token]").fill("not-the-token");
    await login.locator("button[type=submit]").click();
    await login.locator("[role=alert]", { hasText: "refused" }).waitFor();
    assert.equal(await page.locator("header.top").count(), 0);

    // A wrong keyboard layout: a character no HTTP header carries (a Cyrillic 'с').
    await login.locator("input[name=token]").fill(`\u0441${token.slice(1)}`);
    await login.locator("button[type=submit]").click();
    await login.locator("[role=alert]", { hasText: "cannot hold 'с'" }).waitFor();

    // Pasted with a space around it, as the server reads a Bearer token: it is the token.
    await login.locator("input[name=token]").fill(` ${token} `);
    await login.locator("button[type=submit]").click();
    await page.locator(".health .status", { hasText: "connected" }).waitFor({ timeout: 15000 });
    const client = await TestClient.connect(`${server.url}?token=${token}`);
    await request(client, "createPipeline", { id: "kept", pipeline: LIVE });
    await request(client, "startPipeline", { id: "kept" });
    await client.close();
    await waitForRowState(page, "kept", "PLAYING");
    await shot("logged-in");
    // The token stays in the tab's session storage, not in local storage.
    assert.equal(await page.evaluate(() => localStorage.length), 0);
    assert.equal(await page.evaluate(() => sessionStorage.length), 1);
    assert.deepEqual(errors.filter((e) => !e.includes("401")), []);

    assert.equal(await server.stop(), 0);
    await page.locator(".banner", { hasText: "reconnecting" }).waitFor({ timeout: 15000 });
    await shot("reconnecting");
    server = await startServer({ ...env, GSTREAMER_WS_PORT: port });
    await page.locator(".health .status", { hasText: "connected" }).waitFor({ timeout: 30000 });
    // The stored pipeline came back with the server, playing again.
    const again = await TestClient.connect(`${server.url}?token=${token}`);
    await waitUntil(
      async () => (await request(again, "getPipeline", { id: "kept" })).payload.state === "PLAYING",
      15000,
      "the restarted server's 'kept' to play",
    );
    await request(again, "createPipeline", { id: "after-restart", pipeline: LIVE });
    await again.close();
    // The console still shows its rows from before the restart; once it shows one only the
    // restarted server has (its getPipelines went out first), its 'kept' row is the new one.
    await row(page, "after-restart").waitFor({ timeout: 10000 });
    assert.equal(await row(page, "kept").locator(".state").textContent(), "PLAYING");
    await shot("reconnected");
  } finally {
    await browser?.close();
    assert.equal(await server.stop(), 0, server.logs.join("\n"));
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("console: 200 pipelines listed; each stats update reaches the screen, timed in the browser", async () => {
  const server = await startServer({ GSTREAMER_MAX_PIPELINES: "300" });
  const client = await TestClient.connect(server.url);
  let browser: Browser | undefined;
  try {
    const ids = Array.from({ length: 200 }, (_, i) => `cam-${String(i).padStart(3, "0")}`);
    for (const id of ids) {
      await request(client, "createPipeline", {
        id,
        pipeline: "videotestsrc is-live=true ! video/x-raw,width=64,height=48 ! fakesink sync=true",
      });
    }
    await Promise.all(ids.map((id) => request(client, "startPipeline", { id })));
    browser = await launchChromium();
    const { page, errors, shot } = await openPage(browser, await consoleUrl(server), FOLDER);
    // All 200 are listed; only the rows in view (and a few beyond) are in the DOM.
    const table = page.getByRole("table", { name: "Pipelines" });
    await waitUntil(
      async () => (await table.getAttribute("aria-rowcount")) === "201",
      20000,
      "200 rows and the header",
    );
    await row(page, "cam-000").waitFor();
    // Twenty stats events rendered with all 200 pipelines live.
    // Page expressions as text: they run in the browser, where consoleMetrics lives.
    await page.evaluate("consoleMetrics.statsRenderMs.length = 0");
    const figures = await waitUntil(
      () =>
        page.evaluate<number[] | false>(
          "consoleMetrics.statsRenderMs.length >= 20 && consoleMetrics.statsRenderMs",
        ),
      40000,
      "twenty stats renders",
    ) as number[];
    // The rows show the stats: cam-000's sparkline grows with them.
    const points = () => row(page, "cam-000").locator("svg.spark polyline").getAttribute("points");
    const before = await waitUntil(points, 10000, "a sparkline");
    await waitUntil(async () => (await points()) !== before, 10000, "the sparkline to move");
    const sorted = [...figures].sort((a, b) => a - b);
    console.log(
      `  stats event to screen (DOM updated and laid out) with 200 pipelines: median ` +
        `${sorted[Math.floor(sorted.length / 2)].toFixed(1)} ms, ` +
        `p90 ${sorted[Math.floor(sorted.length * 0.9)].toFixed(1)} ms, ` +
        `max ${sorted.at(-1)!.toFixed(1)} ms over ${figures.length} events`,
    );
    // Responsive: a row still opens its details while the stats keep coming.
    await page.locator(".scroller").evaluate((element) => element.scrollTop = 1e6);
    const clicked = performance.now();
    await row(page, "cam-199").click();
    await page.locator("aside.details h2", { hasText: "cam-199" }).waitFor();
    console.log(
      `  scrolled to the end; a click on the last row showed its details in ${
        (performance.now() - clicked).toFixed(0)
      } ms`,
    );
    // The keyboard walks the list, and the rows follow the selection into view.
    await page.keyboard.press("ArrowUp");
    await page.locator("aside.details h2", { hasText: "cam-198" }).waitFor();
    await page.locator("input.filter").fill("cam-01");
    await waitUntil(
      async () => (await table.getAttribute("aria-rowcount")) === "11",
      10000,
      "the filter to leave cam-010 to cam-019",
    );
    await page.locator("input.filter").fill("");
    await shot("200-pipelines");
    assert.deepEqual(errors, []);
  } finally {
    await browser?.close();
    await client.close();
    assert.equal(await server.stop(), 0, server.logs.join("\n"));
  }
});

Deno.test("console: the page, its assets and its session answer without a token; nothing else does", async () => {
  const server = await startServer({ GSTREAMER_AUTH_TOKEN: "console-test-token" });
  try {
    const page = await fetch(`${server.httpUrl}/`);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /<meta name="gst-ws-path" content="\/gstreamer">/);
    assert.match(page.headers.get("content-security-policy") ?? "", /default-src 'self'/);
    const script = await fetch(`${server.httpUrl}/console/main.js`);
    assert.equal(script.status, 200);
    assert.match(script.headers.get("content-type") ?? "", /javascript/);
    await script.body?.cancel();
    const session = await fetch(`${server.httpUrl}/console/session`);
    assert.deepEqual(await session.json(), { auth: true, authorized: false });
    const withToken = await fetch(`${server.httpUrl}/console/session`, {
      headers: { authorization: "Bearer console-test-token" },
    });
    assert.deepEqual(await withToken.json(), { auth: true, authorized: true });
    // Sent as written (fetch would resolve the dots first): nothing outside console/dist.
    const { hostname, port } = new URL(server.httpUrl);
    for (
      const path of [
        "/console/../deno.json",
        "/console/%2e%2e/deno.json",
        "/console/..%2fdeno.json",
        "/console/..%2f..%2fetc%2fpasswd",
        "/console/nothing.js",
      ]
    ) {
      const connection = await Deno.connect({ hostname, port: Number(port) });
      await connection.write(new TextEncoder().encode(
        `GET ${path} HTTP/1.1\r\nHost: ${hostname}\r\n` +
          "Authorization: Bearer console-test-token\r\nConnection: close\r\n\r\n",
      ));
      const answer = await new Response(connection.readable).text();
      assert.match(answer, /^HTTP\/1\.1 404 /, `${path}: ${answer.slice(0, 200)}`);
    }
    const metrics = await fetch(`${server.httpUrl}/metrics`);
    assert.equal(metrics.status, 401);
    await metrics.body?.cancel();
  } finally {
    assert.equal(await server.stop(), 0, server.logs.join("\n"));
  }
});
