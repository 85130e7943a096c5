// Reads one doctype's ERP Connect change feed the way a mobile app does: frappe-js-sdk with the
// person's OAuth access token (Authorization: Bearer ...), page after page, starting again when
// the feed answers resync. Prints {"user", "names", "deleted", "resyncs", "pages", "cursor"}.
//
//   node mobile_feed.mjs URL SITE ACCESS_TOKEN CONNECTOR DOCTYPE [CURSOR]
//
// SITE goes in X-Frappe-Site-Name, for a server that hosts several sites (empty: by host name).
import sdk from "frappe-js-sdk";

const [url, site, accessToken, connector, doctype, start] = process.argv.slice(2);
if (!url || !accessToken || !connector || !doctype) {
	console.error("usage: node mobile_feed.mjs URL SITE ACCESS_TOKEN CONNECTOR DOCTYPE [CURSOR]");
	process.exit(2);
}

const app = new sdk.FrappeApp(
	url,
	{ useToken: true, token: () => accessToken, type: "Bearer" },
	"erp-connect-mobile",
	site ? { "X-Frappe-Site-Name": site } : {},
);
const call = app.call();

async function main() {
	const me = await call.get("frappe.auth.get_logged_user");
	let cursor = start || null;
	let names = new Map(); // the app's copy: name -> modified
	const deleted = [];
	let resyncs = 0;
	let pages = 0;
	for (;;) {
		const { message: page } = await call.get("erp_connect.api.v1.changes", {
			connector,
			doctype,
			cursor,
			limit: 50,
		});
		pages += 1;
		if (page.resync) {
			// what this person may read has changed: drop the copy and read again from the start
			names = new Map();
			resyncs += 1;
		}
		for (const record of page.records) names.set(record.name, record.modified);
		for (const gone of page.deleted) {
			names.delete(gone.name);
			deleted.push(gone.name);
		}
		cursor = page.cursor;
		if (!page.has_more) break;
		if (pages > 1000) throw new Error("the feed did not end");
	}
	console.log(JSON.stringify({ user: me.message, names: [...names.keys()], deleted, resyncs, pages, cursor }));
}

main().catch((error) => {
	console.error(JSON.stringify(error));
	process.exit(1);
});
