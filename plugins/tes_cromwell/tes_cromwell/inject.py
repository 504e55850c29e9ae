"""The ``write_tsv`` workaround: inputs Cromwell wrote next to the script but did not list.

Files written server-side by ``write_tsv()``, ``write_lines()`` and friends
(``execution/write_<fn>_<md5>.tmp``) are listed as inputs by current Cromwell, but not by
old versions or with some URL forms. So, like the seed, list the call's execution folder
in blob storage and add every file that is not an input already, comparing full paths,
not base names. Skipped: ``script`` (the command script input), sub-folders (glob
folders are outputs), and files the task declares as outputs (``rc``, ``stdout`` ... of
an earlier run of the same attempt).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tes_core.errors import ServiceUnavailable

from .detect import CromwellCall
from .locate import locate
from .options import Options

if TYPE_CHECKING:
    from tes_core.blobstore import BlobStore

log = logging.getLogger(__name__)

SCRIPT = "script"


def unlisted_inputs(
    task: Mapping[str, Any],
    call: CromwellCall,
    options: Options,
    storage: BlobStore | None,
    backend_name: str,
) -> list[dict[str, Any]]:
    """Inputs for the files in the call's execution folder that the task does not list."""
    if not options.list_execution_folder or storage is None:
        return []
    script_url = call.script.get("url") or call.script["path"]
    script_url = str(script_url).partition("?")[0]
    location = locate(
        script_url, "input", options=options, storage=storage,
        workflow_id=call.workflow_id, root_workflow_id=call.root_workflow_id,
        backend_name=backend_name,
    )
    if location is None or "/" not in location.blob:
        return []
    prefix = location.blob.rsplit("/", 1)[0] + "/"
    try:
        names = location.account.list_blobs(location.container, prefix)
    except Exception as exc:
        log.warning("listing %s/%s for a Cromwell task failed: %s",
                    location.container, prefix, type(exc).__name__)
        raise ServiceUnavailable(
            f"listing the call's execution folder {prefix} in blob container "
            f"{location.container!r} failed ({type(exc).__name__}); try again"
        ) from None
    folder_url = script_url.rsplit("/", 1)[0]
    encode = not script_url.startswith("/")
    folder_path = call.execution_path
    taken_paths = {item.get("path") for item in task.get("inputs") or ()}
    taken_paths.update(item.get("path") for item in task.get("outputs") or ())
    taken_urls = {str(item.get("url", "")).partition("?")[0] for item in task.get("inputs") or ()}
    added: list[dict[str, Any]] = []
    for name in sorted(names):
        relative = name[len(prefix):]
        if not relative or "/" in relative or relative == SCRIPT:
            continue
        path = f"{folder_path}/{relative}"
        url = f"{folder_url}/{quote(relative, safe='~') if encode else relative}"
        if path in taken_paths or url in taken_urls:
            continue
        added.append({
            "name": relative,
            "description": f"{call.fqn}.{relative}: in the execution folder, not listed "
                           "by Cromwell (added by tes-cromwell)",
            "url": url,
            "path": path,
            "type": "FILE",
        })
    return added
