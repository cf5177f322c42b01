"""Take the README's screenshot of a model page: the embedded Hub's pages over the store `make demo` filled,
in Debian's headless Chromium, saved as a palette PNG (a fraction of the size of the browser's own).

    .venv/bin/python scripts/screenshot_model_page.py [--hub-dir .hubpub/hub] [--out docs/images/model-page.png]
"""

from __future__ import annotations

import argparse
import io
import shutil
import tempfile
from pathlib import Path

from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from hubpub.hub import HubServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hub-dir", type=Path, default=Path(".hubpub") / "hub")
    parser.add_argument("--repo", default="demo/SmolLM2-135M-Instruct-W4A16")
    parser.add_argument("--out", type=Path, default=Path("docs") / "images" / "model-page.png")
    parser.add_argument("--size", default="1280,1000", help="The browser window, WIDTH,HEIGHT in pixels.")
    arguments = parser.parse_args()
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--hide-scrollbars", f"--window-size={arguments.size}"):
        options.add_argument(argument)
    with tempfile.TemporaryDirectory() as folder:
        # A copy: opening a store tidies its tmp/ folder, and the demo's store is not this script's to touch.
        store = Path(folder) / "hub"
        shutil.copytree(arguments.hub_dir, store)
        driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
        try:
            with HubServer(store) as server:
                driver.get(f"{server.url}/{arguments.repo}")
                png = driver.get_screenshot_as_png()
        finally:
            driver.quit()
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    image.save(arguments.out, optimize=True)
    print(f"{arguments.out}: {arguments.out.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
