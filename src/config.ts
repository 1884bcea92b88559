/** Configuration from the environment (and a `.env` file when present). */
import { parse as parseDotenv } from "dotenv";
import { z } from "zod";

const port = (fallback: number) =>
  z.string().default(String(fallback)).transform((text, ctx) => {
    const value = Number(text);
    if (!/^\d+$/.test(text.trim()) || value > 65535) {
      ctx.addIssue({ code: "custom", message: "accepts a whole number from 0 to 65535" });
      return z.NEVER;
    }
    return value;
  });

const configSchema = z.object({
  GSTREAMER_WS_HOST: z.string().trim().min(1, "accepts a host name or IP address").default(
    "localhost",
  ),
  GSTREAMER_WS_PORT: port(8080),
  GSTREAMER_RTSP_PORT: port(8554),
  GSTREAMER_WS_PATH: z.string().regex(
    /^\/[A-Za-z0-9._~\/-]*$/,
    "accepts a URL path that starts with '/', such as /gstreamer",
  ).default("/gstreamer"),
  GSTREAMER_STATS_INTERVAL_MS: z.string().default("1000").transform((text, ctx) => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < 100 || value > 60000) {
      ctx.addIssue({ code: "custom", message: "accepts milliseconds from 100 to 60000" });
      return z.NEVER;
    }
    return value;
  }),
});

export interface Config {
  host: string;
  port: number;
  rtspPort: number;
  path: string;
  statsIntervalMs: number;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Reads the settings; an invalid value throws a ConfigError naming the variable and what it accepts. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const parsed = configSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const name = String(issue.path[0]);
    throw new ConfigError(
      `Invalid ${name}=${JSON.stringify(env[name] ?? "")}: ${name} ${issue.message}`,
    );
  }
  const c = parsed.data;
  return {
    host: c.GSTREAMER_WS_HOST,
    port: c.GSTREAMER_WS_PORT,
    rtspPort: c.GSTREAMER_RTSP_PORT,
    path: c.GSTREAMER_WS_PATH,
    statsIntervalMs: c.GSTREAMER_STATS_INTERVAL_MS,
  };
}

/** The process environment over the `.env` file's values (the environment wins); GSTREAMER_ENV_FILE names another file. */
export function readEnvironment(
  envFile = Deno.env.get("GSTREAMER_ENV_FILE") ?? ".env",
): Record<string, string | undefined> {
  let fromFile: Record<string, string> = {};
  try {
    fromFile = parseDotenv(Deno.readTextFileSync(envFile));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return { ...fromFile, ...Deno.env.toObject() };
}
