/** dist/web, where the browser build goes. */
export declare const WEB_DIST: string;
/** Bundles the browser build into dist/web; returns that folder. */
export declare function buildBrowser(options?: { minify?: boolean }): Promise<string>;
