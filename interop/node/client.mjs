// A channel's client written as an integrator in another language would: Node with @grpc/grpc-js,
// reading paymesh's own .proto files and the dev certificates. It consults a loan, pays it online
// and on the stream, follows its confirmations, uploads a small day file, and decodes the
// google.rpc details of a refusal. Prints one JSON line of what it saw; exits 1 on the first surprise.
//
//   PAYMESH_ROUTER_ADDR=127.0.0.1:50051 PAYMESH_CONFIRMATIONS_ADDR=127.0.0.1:50081 PAYMESH_PKI_DIR=... \
//   PAYMESH_LOAN_ID=CSH-000003 PAYMESH_APP_TOKEN=<jwt> PAYMESH_APP_LOAN_ID=... PAYMESH_BUSINESS_DATE=2026-11-27 \
//   PAYMESH_GOOGLE_PROTOS=<a folder holding google/rpc/*.proto> node client.mjs
import { readFileSync } from "node:fs";
import { join } from "node:path";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";
import protobuf from "protobufjs";

const env = (name) => {
  if (!process.env[name]) throw new Error(`${name} is not set`);
  return process.env[name];
};
const here = new URL(".", import.meta.url).pathname;
const definitions = protoLoader.loadSync(
  ["bank/payments/v1/payment_service.proto", "bank/confirmations/v1/confirmation_service.proto"],
  { includeDirs: [join(here, "../../protos")],
    keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
const loaded = grpc.loadPackageDefinition(definitions);
const { PaymentService } = loaded.bank.payments.v1;
const { ConfirmationService } = loaded.bank.confirmations.v1;
// The google.rpc messages, to decode a refusal's details (protobufjs: what proto-loader itself reads with).
const googleRpc = new protobuf.Root();
googleRpc.resolvePath = (origin, target) => join(env("PAYMESH_GOOGLE_PROTOS"), target);
googleRpc.loadSync(["google/rpc/status.proto", "google/rpc/error_details.proto"], { keepCase: true });

// Each channel's certificate (spiffe://paymesh.bank/channel/<name>), the mesh CA's root.
const pki = env("PAYMESH_PKI_DIR");
const credentials = (name) => grpc.credentials.createSsl(
  readFileSync(join(pki, "ca.crt")), readFileSync(join(pki, "channel", `${name}.key`)),
  readFileSync(join(pki, "channel", `${name}.crt`)));
const options = { "grpc.ssl_target_name_override": "localhost", "grpc.default_authority": "localhost" };
const client = (Service, address, name) => new Service(address, credentials(name), options);
const deadline = () => new Date(Date.now() + 10_000);
const unary = (stub, method, request, metadata = new grpc.Metadata()) => new Promise((resolve, reject) =>
  stub[method](request, metadata, { deadline: deadline() }, (error, reply) => (error ? reject(error) : resolve(reply))));
const check = (condition, what) => { if (!condition) throw new Error(what); };

// The google.rpc.Status in a refusal's grpc-status-details-bin trailer, with its details unpacked.
function details(error) {
  const [bin] = error.metadata.get("grpc-status-details-bin");
  const status = googleRpc.lookupType("google.rpc.Status").decode(bin);
  const unpacked = {};
  for (const any of status.details) {
    const name = any.type_url.split("/").pop();  // type.googleapis.com/google.rpc.ErrorInfo
    const type = googleRpc.lookupType(name);
    unpacked[name.replace("google.rpc.", "")] = type.toObject(type.decode(any.value), { enums: String, defaults: true });
  }
  return unpacked;
}

async function main() {
  const seen = {};
  const router = env("PAYMESH_ROUTER_ADDR");
  const atm = client(PaymentService, router, "atm");
  const loanId = env("PAYMESH_LOAN_ID");

  // 1. The inquiry before taking the cash.
  const { debt } = await unary(atm, "GetLoanDebt", { loan_id: loanId });
  check(debt.loan_id === loanId && debt.currency_code, "the inquiry names the loan and its currency");
  seen.amount_due = debt.amount_due.amount_minor;
  const amount = Number(debt.amount_due.amount_minor) > 0 ? debt.amount_due.amount_minor : "100";

  // 2. Online: the amount the inquiry gave.
  const money = { currency_code: debt.currency_code, amount_minor: amount };
  const online = await unary(atm, "SubmitPayment", { payment: { idempotency_key: "node-online-1", loan_id: loanId, amount: money } });
  check(online.payment.status === "PAYMENT_STATUS_APPLIED", `online: ${online.payment.status}`);
  check(Number(online.payment.confirmation_sequence) > 0, "online: a confirmation sequence");
  seen.online = online.payment.payment_id;

  // 3. The stream: three orders, each answered (with its confirmation sequence).
  const small = { currency_code: debt.currency_code, amount_minor: "100" };
  const streamed = await new Promise((resolve, reject) => {
    const answers = [];
    const call = atm.StreamPayments(new grpc.Metadata(), { deadline: deadline() });
    call.on("data", (response) => answers.push(response.payment));
    call.on("error", reject);
    call.on("end", () => resolve(answers));
    for (const n of [1, 2, 3]) call.write({ payment: { idempotency_key: `node-stream-${n}`, loan_id: loanId, amount: small } });
    call.end();
  });
  check(streamed.length === 3 && streamed.every((p) => p.status === "PAYMENT_STATUS_APPLIED"), "stream: 3 applied");
  check(streamed.every((p) => Number(p.confirmation_sequence) > 0), "stream: each with its sequence");
  seen.streamed = streamed.map((p) => p.payment_id);

  // 4. Its confirmations, from the beginning of the ATM channel's log.
  const wanted = new Set([seen.online, ...seen.streamed]);
  const confirmations = client(ConfirmationService, env("PAYMESH_CONFIRMATIONS_ADDR"), "atm");
  seen.confirmed = await new Promise((resolve, reject) => {
    const got = new Set();
    const call = confirmations.Subscribe({ start_position: "START_POSITION_BEGINNING" }, new grpc.Metadata(),
      { deadline: deadline() });
    call.on("data", (event) => {
      for (const c of event.batch ? event.batch.confirmations : []) if (wanted.has(c.payment_id)) got.add(c.payment_id);
      if (got.size === wanted.size) { call.cancel(); resolve(got.size); }
    });
    call.on("error", (error) => (error.code === grpc.status.CANCELLED ? null : reject(error)));
  });

  // 5. An agent's day file: header, two lines, trailer.
  const agent = client(PaymentService, router, "agent");
  const date = env("PAYMESH_BUSINESS_DATE");
  const upload = await new Promise((resolve, reject) => {
    const call = agent.UploadBatch(new grpc.Metadata(), { deadline: deadline() },
      (error, reply) => (error ? reject(error) : resolve(reply)));
    call.write({ header: { batch_id: "node-day-1", business_date: date } });
    call.write({ lines: { lines: [1, 2].map((n) => ({ line_number: n, payment: { loan_id: loanId, amount: small } })) } });
    call.write({ trailer: { line_count: 2, control_totals: [{ currency_code: debt.currency_code, amount_minor: "200" }] } });
    call.end();
  });
  check(upload.summary.line_count === "2" && upload.results.length === 2, "batch: two lines answered");
  seen.batch_applied = upload.summary.applied_count;

  // 6. A refusal's details, as a person's message and machine-readable reasons.
  try {
    await unary(atm, "SubmitPayment", { payment: { idempotency_key: "node-bad-1", loan_id: "CSH-999999", amount: small } });
    throw new Error("an unknown loan was paid");
  } catch (error) {
    if (!error.metadata) throw error;
    const found = details(error);
    check(error.code === grpc.status.NOT_FOUND, `refusal code ${error.code}`);
    check(found.ErrorInfo.reason === "LOAN_NOT_FOUND" && found.ErrorInfo.domain === "paymesh.bank", "ErrorInfo");
    check(found.BadRequest.field_violations.some((v) => v.field === "payment.loan_id"), "BadRequest names the field");
    seen.refusal = { code: error.code, reason: found.ErrorInfo.reason, fields: found.BadRequest.field_violations.map((v) => v.field) };
  }

  // 7. A digital customer: the app's token, with the scheme in lower case, asks about their own loan.
  const app = client(PaymentService, router, "app");
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `bearer ${env("PAYMESH_APP_TOKEN")}`);
  const own = await unary(app, "GetLoanDebt", { loan_id: env("PAYMESH_APP_LOAN_ID") }, metadata);
  check(own.debt.loan_id === env("PAYMESH_APP_LOAN_ID"), "the app sees its customer's loan");
  seen.app_loan = own.debt.loan_id;

  console.log(JSON.stringify(seen));
}

main().then(() => process.exit(0), (error) => {
  console.error(`interop: ${error.message}`);
  process.exit(1);
});
