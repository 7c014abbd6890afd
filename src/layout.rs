//! Which page goes where, and the flicker-free swap.
//!
//! Each frame the [`Plan`] says, for every window, which pages are wanted in which box (in
//! physical pixels, so the page is rasterized at the size it is shown at), and [`WantedPages`]
//! asks the score plugin for those and for the likely next ones (prefetch). The slots on screen
//! ([`PageSlot`] sprites) change only when *every* wanted page has a texture: the old pages stay
//! until then and all slots swap in the same frame. After a resize the old texture is shown
//! scaled into the new box until the page at the new size arrives.

use bevy::camera::visibility::RenderLayers;
use bevy::diagnostic::FrameCount;
use bevy::prelude::*;
use maestral_score::{PageKey, PixelSize, SongId};

use crate::model::{
    AppError, EnginePager, HalfTurn, LastTurn, LayoutMode, LayoutSystems, PagePart, PageTexture,
    PageTextures, PageWindow, PagesPresented, PixelRect, Position, PresentedPage, Projector,
    Rotation, SongLibrary, TextureKey, WantedPages,
};
use crate::navigation;

/// The smallest box, in pixels a side, a page is drawn into; smaller says "too small".
pub const MIN_SIDE: u32 = 32;

pub fn plugin(app: &mut App) {
    app.init_resource::<Plan>()
        .add_systems(Update, plan_pages.in_set(LayoutSystems::Plan))
        .add_systems(Update, present_pages.in_set(LayoutSystems::Present));
}

/// One wanted page in one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotPlan {
    pub window: Entity,
    pub window_index: u8,
    /// The slot within its window (0: left or only, 1: right).
    pub slot: u8,
    /// `None`: nothing here (past the end of the score, or a song this device does not have).
    pub page: Option<u32>,
    /// The part of the page drawn: a half-page turn draws halves of two pages, each where it
    /// would be on the page as a whole (the page is rasterized whole, for `rect`).
    pub part: PagePart,
    /// The slot's box in content space (before rotation), in physical pixels.
    pub rect: PixelRect,
    /// The content space's size (the window's, axes swapped by a quarter turn).
    pub content: (u32, u32),
    pub scale_factor_milli: u32,
}

impl SlotPlan {
    /// The box a page is rasterized into; `None` if it is too small to draw a page.
    pub fn target(&self) -> Option<PixelSize> {
        (self.rect.width >= MIN_SIDE && self.rect.height >= MIN_SIDE)
            .then(|| PixelSize::new(self.rect.width, self.rect.height))
    }

    fn scale_factor(&self) -> f32 {
        self.scale_factor_milli as f32 / 1000.0
    }
}

/// What should be on screen now.
#[derive(Resource, Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The song to draw (`None`: none, or one this device does not have).
    pub song: Option<SongId>,
    pub dark: bool,
    pub rotation: Rotation,
    pub slots: Vec<SlotPlan>,
}

impl Plan {
    fn key(&self, slot: &SlotPlan) -> Option<TextureKey> {
        let (song, page, target) = (self.song.clone()?, slot.page?, slot.target()?);
        Some(TextureKey { page: PageKey { song, page, target }, dark: self.dark })
    }

    /// True when every slot of window `index` shows the page this plan wants, drawn for its
    /// box (a screenshot taken now shows the final pages).
    pub fn settled(&self, index: u8, slots: &[&PageSlot]) -> bool {
        let mut planned = self.slots.iter().filter(|s| s.window_index == index).peekable();
        planned.peek().is_some()
            && planned.all(|p| {
                slots.iter().any(|s| {
                    s.window == p.window
                        && s.slot == p.slot
                        && match (&s.shown, p.page) {
                            (Some(shown), Some(page)) => {
                                shown.page == page && Some(shown.drawn_for) == p.target()
                            }
                            (None, None) => true,
                            _ => false,
                        }
                })
            })
    }
}

/// One page slot on screen: a sprite in one window.
#[derive(Component, Debug, Clone, PartialEq, Eq)]
pub struct PageSlot {
    pub window: Entity,
    pub window_index: u8,
    pub slot: u8,
    /// What it shows (`None`: nothing).
    pub shown: Option<ShownPage>,
}

/// The texture a slot shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownPage {
    pub song: SongId,
    pub page: u32,
    pub dark: bool,
    /// The texture's own size and the box it was drawn for.
    pub size: PixelSize,
    pub drawn_for: PixelSize,
    pub image: Handle<Image>,
    /// The part of it drawn.
    pub part: PagePart,
}

fn plan_pages(
    position: Res<Position>,
    half: Res<HalfTurn>,
    mode: Res<LayoutMode>,
    projector: Res<Projector>,
    library: Res<SongLibrary>,
    engine: Res<EnginePager>,
    windows: Query<(Entity, &Window, &PageWindow)>,
    mut plan: ResMut<Plan>,
    mut wanted: ResMut<WantedPages>,
    mut errors: MessageWriter<AppError>,
    mut was_too_small: Local<bool>,
) {
    let song = position.song.as_ref().and_then(|id| library.get(id));
    let count = song.map(|s| s.page_count);
    let spread = position.page - position.page % 2;
    let mut windows: Vec<_> = windows.iter().collect();
    windows.sort_by_key(|(_, _, w)| w.index);

    let mut slots = Vec::new();
    for (entity, window, page_window) in windows {
        let (w, h) = (window.physical_width(), window.physical_height());
        let content = if projector.rotation.swaps_axes() { (h, w) } else { (w, h) };
        let scale_factor_milli = (window.scale_factor() * 1000.0).round().max(1.0) as u32;
        let whole = PixelRect { x: 0, y: 0, width: content.0, height: content.1 };
        let mut add = |slot: u8, page: u32, rect: PixelRect, part: PagePart| {
            let page = song.and(Some(page)).filter(|&p| count.is_none_or(|c| p < c));
            slots.push(SlotPlan {
                window: entity,
                window_index: page_window.index,
                slot,
                page,
                part,
                rect,
                content,
                scale_factor_milli,
            });
        };
        let whole_page = PagePart::Whole;
        match (*mode, page_window.index, half.next(&position)) {
            (LayoutMode::HalfTurns, 0, Some(next)) => {
                add(0, next, whole, PagePart::Top);
                add(1, position.page, whole, PagePart::Bottom);
            }
            (LayoutMode::Single | LayoutMode::HalfTurns, 0, _) => {
                add(0, position.page, whole, whole_page);
            }
            (LayoutMode::TwoUp, 0, _) => {
                let left = content.0 / 2;
                add(0, spread, PixelRect { width: left, ..whole }, whole_page);
                let right = PixelRect { x: left, width: content.0 - left, ..whole };
                add(1, spread + 1, right, whole_page);
            }
            (LayoutMode::DualWindow, i @ (0 | 1), _) => {
                add(0, spread + u32::from(i), whole, whole_page);
            }
            // Windows the layout does not use show nothing.
            _ => {}
        }
    }

    let too_small = slots.iter().any(|s| s.target().is_none());
    if too_small && !*was_too_small {
        let smallest = slots.iter().map(|s| s.rect.width.min(s.rect.height)).min().unwrap_or(0);
        errors.write(AppError(format!(
            "the window is too small to show a page ({smallest} px); make it at least {MIN_SIDE}×{MIN_SIDE} px"
        )));
    }
    *was_too_small = too_small;

    let next = Plan {
        song: song.map(|s| s.id.clone()),
        dark: projector.dark,
        rotation: projector.rotation,
        slots,
    };

    // Visible pages first, then the likely next: the following turns and the previous one.
    let mut want = WantedPages { dark: next.dark, ..default() };
    let step = navigation::pager(*mode, *engine).step();
    for slot in &next.slots {
        if let Some(key) = next.key(slot) {
            want.visible.push(key.page);
        }
    }
    for offset in [step as i64, 2 * step as i64, -(step as i64)] {
        for slot in &next.slots {
            let Some(key) = next.key(slot) else { continue };
            let Some(page) = u32::try_from(i64::from(key.page.page) + offset).ok() else {
                continue;
            };
            if count.is_some_and(|c| page >= c) {
                continue;
            }
            let page = PageKey { page, ..key.page };
            if !want.visible.contains(&page) && !want.prefetch.contains(&page) {
                want.prefetch.push(page);
            }
        }
    }
    plan.set_if_neq(next);
    wanted.set_if_neq(want);
}

/// What a planned slot would show now: `Some(Some(texture))`, `Some(None)` for an empty slot
/// (nothing there, or a page that cannot be drawn), `None` while its page is not ready.
fn content_for<'a>(
    plan: &Plan,
    slot: &SlotPlan,
    textures: &'a PageTextures,
) -> Option<Option<(TextureKey, &'a PageTexture)>> {
    let (Some(song), Some(page)) = (plan.song.clone(), slot.page) else { return Some(None) };
    let target = slot.target()?;
    let key = TextureKey { page: PageKey { song: song.clone(), page, target }, dark: plan.dark };
    if let Some(texture) = textures.get(&key) {
        return Some(Some((key, texture)));
    }
    if textures.failure(&key).is_some() {
        return Some(None);
    }
    textures.any_size(&song, page, plan.dark).map(|(old, t)| Some((old.clone(), t)))
}

fn present_pages(
    mut commands: Commands,
    plan: Res<Plan>,
    textures: Res<PageTextures>,
    mut slots: Query<(Entity, &mut PageSlot, &mut Sprite, &mut Transform, &mut Visibility)>,
    mut presented: MessageWriter<PagesPresented>,
    frame: Option<Res<FrameCount>>,
    mut last_turn: ResMut<LastTurn>,
    time: Res<Time<Real>>,
) {
    // Every planned slot must be ready (or empty) before anything changes.
    let mut contents = Vec::with_capacity(plan.slots.len());
    for slot in &plan.slots {
        if slot.target().is_none() {
            // Too small to draw: leave whatever is there.
            contents.push(None);
            continue;
        }
        match content_for(&plan, slot, &textures) {
            Some(content) => contents.push(Some(content)),
            None => {
                // Not ready: the old pages stay, refitted to the boxes (a resize in progress).
                for (_, page_slot, mut sprite, mut transform, _) in &mut slots {
                    if let (Some(shown), Some(planned)) =
                        (&page_slot.shown, plan_for(&plan, &page_slot))
                    {
                        let at = (shown.size, shown.part);
                        place(&plan, planned, at, &mut sprite, &mut transform);
                    }
                }
                return;
            }
        }
    }

    let mut changed = false;
    let mut pages = Vec::new();
    let mut kept = Vec::new();
    for (planned, content) in plan.slots.iter().zip(contents) {
        let Some(content) = content else { continue };
        let shown = content.map(|(key, texture)| ShownPage {
            song: key.page.song,
            page: key.page.page,
            dark: key.dark,
            size: texture.size,
            drawn_for: key.page.target,
            image: texture.image.clone(),
            part: planned.part,
        });
        let existing = slots
            .iter_mut()
            .find(|(_, s, ..)| s.window == planned.window && s.slot == planned.slot);
        let entity = match existing {
            Some((entity, mut page_slot, mut sprite, mut transform, mut visibility)) => {
                if page_slot.shown != shown {
                    changed = true;
                    apply(
                        &plan,
                        planned,
                        shown.as_ref(),
                        &mut sprite,
                        &mut transform,
                        &mut visibility,
                    );
                    page_slot.shown = shown.clone();
                } else if let Some(s) = &shown {
                    place(&plan, planned, (s.size, s.part), &mut sprite, &mut transform);
                }
                entity
            }
            None => {
                changed = true;
                let (mut sprite, mut transform, mut visibility) =
                    (Sprite::default(), Transform::default(), Visibility::Hidden);
                apply(&plan, planned, shown.as_ref(), &mut sprite, &mut transform, &mut visibility);
                commands
                    .spawn((
                        PageSlot {
                            window: planned.window,
                            window_index: planned.window_index,
                            slot: planned.slot,
                            shown: shown.clone(),
                        },
                        sprite,
                        transform,
                        visibility,
                        RenderLayers::layer(usize::from(planned.window_index)),
                    ))
                    .id()
            }
        };
        kept.push(entity);
        pages.push(PresentedPage {
            window_index: planned.window_index,
            slot: planned.slot,
            page: shown.as_ref().map(|s| s.page),
            part: planned.part,
            rect: screen_rect(&plan, planned, shown.as_ref().map(|s| (s.size, s.part))),
            exact: shown.as_ref().is_none_or(|s| Some(s.drawn_for) == planned.target()),
        });
    }
    // Slots the plan no longer has go in the same frame.
    for (entity, page_slot, ..) in &slots {
        if !kept.contains(&entity) && plan_for(&plan, page_slot).is_none() {
            commands.entity(entity).despawn();
            changed = true;
        }
    }
    if changed {
        let frame = frame.map_or(0, |f| f.0);
        // The turn is answered by this swap; later swaps (a resize, a remote turn) are not its.
        let since_turn = last_turn.at.take().map(|(at, turn_frame)| {
            (time.elapsed().saturating_sub(at), frame.wrapping_sub(turn_frame))
        });
        presented.write(PagesPresented { frame, pages, since_turn });
    }
}

/// The planned slot a slot on screen belongs to.
fn plan_for<'a>(plan: &'a Plan, slot: &PageSlot) -> Option<&'a SlotPlan> {
    plan.slots.iter().find(|p| p.window == slot.window && p.slot == slot.slot)
}

fn apply(
    plan: &Plan,
    planned: &SlotPlan,
    shown: Option<&ShownPage>,
    sprite: &mut Sprite,
    transform: &mut Transform,
    visibility: &mut Visibility,
) {
    match shown {
        Some(shown) => {
            sprite.image = shown.image.clone();
            place(plan, planned, (shown.size, shown.part), sprite, transform);
            *visibility = Visibility::Inherited;
        }
        None => *visibility = Visibility::Hidden,
    }
}

/// The size a texture is drawn at in its box: its own size when it was drawn for this box,
/// else scaled to fit (keeping its aspect ratio).
fn fitted_size(planned: &SlotPlan, size: PixelSize) -> Option<PixelSize> {
    let PixelRect { width: bw, height: bh, .. } = planned.rect;
    if size.width == 0 || size.height == 0 || bw == 0 || bh == 0 {
        return None;
    }
    let fits = size.width <= bw && size.height <= bh;
    if fits && (size.width == bw || size.height == bh) {
        return Some(size);
    }
    let scale = (f64::from(bw) / f64::from(size.width)).min(f64::from(bh) / f64::from(size.height));
    let side = |v: u32, limit: u32| ((f64::from(v) * scale).round() as u32).clamp(1, limit);
    Some(PixelSize::new(side(size.width, bw), side(size.height, bh)))
}

/// The drawn page's (or, in a half-page turn, the drawn half's) top-left corner and size in
/// content space (whole pixels).
fn content_rect(planned: &SlotPlan, size: PixelSize, part: PagePart) -> Option<PixelRect> {
    let fitted = fitted_size(planned, size)?;
    let r = planned.rect;
    let page = PixelRect {
        x: r.x + (r.width - fitted.width) / 2,
        y: r.y + (r.height - fitted.height) / 2,
        width: fitted.width,
        height: fitted.height,
    };
    let top = page.height / 2;
    Some(match part {
        PagePart::Whole => page,
        PagePart::Top => PixelRect { height: top, ..page },
        PagePart::Bottom => PixelRect { y: page.y + top, height: page.height - top, ..page },
    })
}

/// The part of a texture of `size` a slot draws, in texture pixels (`None`: all of it).
fn texture_part(part: PagePart, size: PixelSize) -> Option<Rect> {
    let (w, h) = (size.width as f32, size.height as f32);
    let top = (size.height / 2) as f32;
    match part {
        PagePart::Whole => None,
        PagePart::Top => Some(Rect::new(0.0, 0.0, w, top)),
        PagePart::Bottom => Some(Rect::new(0.0, top, w, h)),
    }
}

/// Where a drawn page lands on screen (window pixels), rotation included.
fn screen_rect(plan: &Plan, planned: &SlotPlan, at: Option<(PixelSize, PagePart)>) -> PixelRect {
    let Some(rect) = at.and_then(|(size, part)| content_rect(planned, size, part)) else {
        return PixelRect::default();
    };
    let (cw, ch) = (planned.content.0 as f32, planned.content.1 as f32);
    let (ox, oy) = (
        rect.x as f32 + rect.width as f32 / 2.0 - cw / 2.0,
        rect.y as f32 + rect.height as f32 / 2.0 - ch / 2.0,
    );
    let (sx, sy) = plan.rotation.apply(ox, oy);
    let (ww, wh) = if plan.rotation.swaps_axes() { (ch, cw) } else { (cw, ch) };
    let (dw, dh) = if plan.rotation.swaps_axes() {
        (rect.height, rect.width)
    } else {
        (rect.width, rect.height)
    };
    PixelRect {
        x: (ww / 2.0 + sx - dw as f32 / 2.0).round().max(0.0) as u32,
        y: (wh / 2.0 + sy - dh as f32 / 2.0).round().max(0.0) as u32,
        width: dw,
        height: dh,
    }
}

/// Puts a sprite showing `part` of a texture of `size` into its slot: centred, whole physical
/// pixels (so a page drawn for its box is shown pixel for pixel), rotated for a projector.
fn place(
    plan: &Plan,
    planned: &SlotPlan,
    (size, part): (PixelSize, PagePart),
    sprite: &mut Sprite,
    transform: &mut Transform,
) {
    let Some(rect) = content_rect(planned, size, part) else { return };
    let s = planned.scale_factor();
    let (cw, ch) = (planned.content.0 as f32, planned.content.1 as f32);
    let (ox, oy) = (
        rect.x as f32 + rect.width as f32 / 2.0 - cw / 2.0,
        rect.y as f32 + rect.height as f32 / 2.0 - ch / 2.0,
    );
    let (sx, sy) = plan.rotation.apply(ox, oy);
    let custom = Some(Vec2::new(rect.width as f32 / s, rect.height as f32 / s));
    if sprite.custom_size != custom {
        sprite.custom_size = custom;
    }
    let texture = texture_part(part, size);
    if sprite.rect != texture {
        sprite.rect = texture;
    }
    let next = Transform {
        translation: Vec3::new(sx / s, -sy / s, 0.0),
        rotation: Quat::from_rotation_z(-f32::from(plan.rotation.degrees()).to_radians()),
        scale: Vec3::ONE,
    };
    if *transform != next {
        *transform = next;
    }
}
