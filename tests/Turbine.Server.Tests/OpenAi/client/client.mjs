// Calls a Turbine server through the official openai package and prints one JSON object with what came back.
// Usage: node client.mjs BASE_URL API_KEY MODEL
import OpenAI from "openai";

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const result = {};

const completion = await client.completions.create({ model, prompt: "In the beginning", max_tokens: 8, temperature: 0, logprobs: 1 });
result.completion = {
  text: completion.choices[0].text,
  finish_reason: completion.choices[0].finish_reason,
  usage: completion.usage,
  object: completion.object,
  logprobs: completion.choices[0].logprobs.token_logprobs.length,
};

const several = await client.completions.create({ model, prompt: "In the beginning", max_tokens: 6, temperature: 1, n: 3, seed: 7, stop: ["\n"] });
result.several = several.choices.map((c) => ({ index: c.index, text: c.text, finish_reason: c.finish_reason }));

const chat = await client.chat.completions.create({
  model,
  messages: [{ role: "system", content: "You are terse." }, { role: "user", content: "Who made the earth?" }],
  max_completion_tokens: 10,
  temperature: 0,
});
result.chat = {
  role: chat.choices[0].message.role,
  content: chat.choices[0].message.content,
  finish_reason: chat.choices[0].finish_reason,
  usage: chat.usage,
  object: chat.object,
};

const stream = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "Who made the earth?" }],
  max_tokens: 10,
  temperature: 0,
  stream: true,
  stream_options: { include_usage: true },
});
const pieces = [];
let finish = null;
let usage = null;
let chunks = 0;
for await (const chunk of stream) {
  chunks++;
  if (chunk.usage) usage = chunk.usage;
  for (const choice of chunk.choices) {
    if (choice.delta.content) pieces.push(choice.delta.content);
    if (choice.finish_reason) finish = choice.finish_reason;
  }
}
result.stream = { text: pieces.join(""), finish_reason: finish, usage, chunks };

const completionStream = await client.completions.create({ model, prompt: "In the beginning", max_tokens: 8, temperature: 0, stream: true });
const texts = [];
for await (const chunk of completionStream) texts.push(chunk.choices[0]?.text ?? "");
result.completion_stream = texts.join("");

try {
  await client.completions.create({ model: "no-such-model", prompt: "x", max_tokens: 2 });
  result.not_found = null;
} catch (e) {
  result.not_found = { status: e.status, message: e.error?.message ?? e.message };
}
try {
  await client.completions.create({ model, prompt: "x", max_tokens: 2, temperature: 9 });
  result.bad_request = null;
} catch (e) {
  result.bad_request = { status: e.status, message: e.error?.message ?? e.message, param: e.error?.param ?? null };
}
try {
  await new OpenAI({ baseURL, apiKey: "wrong", maxRetries: 0 }).models.list();
  result.unauthorized = null;
} catch (e) {
  result.unauthorized = { status: e.status };
}
const models = await client.models.list();
result.models = models.data.map((m) => m.id);

console.log(JSON.stringify(result));
