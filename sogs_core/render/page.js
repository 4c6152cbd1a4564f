// Loads one splat file in the PlayCanvas engine, renders it from each requested camera, and posts
// the pixels (and every error or console error) back to the Python server that served this page.
import * as pc from '/engine/playcanvas.mjs';

const job = JSON.parse(decodeURIComponent(location.hash.slice(1)));
const post = (path, body) => fetch(path, { method: 'POST', body });
const fail = (msg) => post('/error', String(msg));
window.addEventListener('error', (e) => fail(`page error: ${e.message}`));
window.addEventListener('unhandledrejection', (e) => fail(`unhandled rejection: ${e.reason}`));
const consoleError = console.error.bind(console);
console.error = (...args) => { consoleError(...args); fail(`console error: ${args.join(' ')}`); };

const canvas = document.createElement('canvas');
canvas.width = job.width;
canvas.height = job.height;
document.body.appendChild(canvas);

const app = new pc.Application(canvas, {
    graphicsDeviceOptions: { deviceTypes: ['webgl2'], antialias: false, preserveDrawingBuffer: true, alpha: false }
});
app.setCanvasFillMode(pc.FILLMODE_NONE, job.width, job.height);
app.setCanvasResolution(pc.RESOLUTION_FIXED, job.width, job.height);
app.start();
post('/log', `device: ${app.graphicsDevice.deviceType} ${app.graphicsDevice.unmaskedRenderer || ''}`);

const camera = new pc.Entity('camera');
camera.addComponent('camera', {
    clearColor: new pc.Color(job.background[0], job.background[1], job.background[2], 1),
    fov: job.fov, nearClip: job.near, farClip: job.far
});
app.root.addChild(camera);

const asset = new pc.Asset('scene', 'gsplat', { url: job.scene });
asset.on('error', (err) => fail(`asset error: ${err}`));
app.assets.add(asset);

const gl = app.graphicsDevice.gl;
const pixels = new Uint8Array(job.width * job.height * 4);
const clear = job.background.map((c) => Math.round(c * 255));
const checksum = () => {
    let s = 0;
    for (let i = 0; i < pixels.length; i += 97) s = (s * 31 + pixels[i]) >>> 0;
    return s;
};
const hasContent = () => {
    for (let i = 0; i < pixels.length; i += 4) {
        if (pixels[i] !== clear[0] || pixels[i + 1] !== clear[1] || pixels[i + 2] !== clear[2]) return true;
    }
    return false;
};
const nextFrame = () => new Promise((resolve) => app.once('frameend', resolve));

// the unified renderer (a streamed SOG) says per frame whether every chunk this view needs is
// loaded and placed; a view is not read back before it is
let streamed = !job.unified;
app.systems.gsplat.on('frame:ready', (cam, layer, ready, loading) => { streamed = ready && loading === 0; });

asset.ready(async () => {
    const entity = new pc.Entity('splats');
    // a streamed SOG (lod-meta.json) is drawn by the unified renderer, which streams its chunks
    entity.addComponent('gsplat', job.unified ? { asset, unified: true } : { asset });
    app.root.addChild(entity);
    for (let v = 0; v < job.views.length; v++) {
        const view = job.views[v];
        camera.setPosition(view.position[0], view.position[1], view.position[2]);
        camera.lookAt(new pc.Vec3(view.target[0], view.target[1], view.target[2]),
            new pc.Vec3(view.up[0], view.up[1], view.up[2]));
        // the splats are uploaded and sorted in the background: wait until something is drawn and
        // the picture has stopped changing (an empty view is accepted only after maxFrames)
        let last = -1, same = 0, drawn = false;
        if (job.unified) streamed = false;
        for (let frame = 0; frame < job.maxFrames; frame++) {
            await nextFrame();
            gl.readPixels(0, 0, job.width, job.height, gl.RGBA, gl.UNSIGNED_BYTE, pixels);
            const sum = checksum();
            same = sum === last ? same + 1 : 0;
            last = sum;
            drawn = drawn || hasContent();
            if (drawn && streamed && frame >= job.minFrames && same >= job.stableFrames) break;
        }
        if (!drawn) post('/log', `view ${v}: nothing drawn after ${job.maxFrames} frames`);
        await post(`/result/${v}`, pixels);
    }
    await post('/done', 'ok');
});
app.assets.load(asset);
